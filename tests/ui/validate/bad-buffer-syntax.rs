use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 a: Enriched { bucket: "acme-a", buffer: 5MiB and 60s }
        s3 b: Enriched { bucket: "acme-b", buffer: 5MiB or 10MiB }
    }
}

fn main() {}
