use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/!{firehose:random}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
        }
    }
}

fn main() {}
