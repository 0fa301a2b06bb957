use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 a: Enriched { bucket: "acme-a", file_extension: "json" }
        s3 b: Enriched { bucket: "acme-b", file_extension: ".JSON" }
        s3 c: Enriched { bucket: "acme-c", time_zone: "UTC+2" }
    }
}

fn main() {}
