use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 spec: Enriched { bucket: "acme-lake" }
        s3 direct: Enriched { bucket: "acme-direct" }
    }
}

fn main() {}
