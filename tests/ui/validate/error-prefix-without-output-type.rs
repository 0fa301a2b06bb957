use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/",
            error_prefix: "errors/",
        }
    }
}

fn main() {}
