use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 a: Enriched { bucket: "Acme_Telemetry" }
        s3 b: Enriched { bucket: "ab" }
        s3 c: Enriched { bucket: "192.168.5.4" }
        s3 d: Enriched { bucket: "xn--acme" }
        s3 e: Enriched { bucket: "acme..lake" }
        s3 f: Enriched { bucket: "acme-s3alias" }
        s3 g: Enriched { bucket: "-acme" }
    }
}

fn main() {}
