use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 a: Enriched {
            bucket: "acme-a",
            prefix: "raw/!{timestamp:yyyy/MMM}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
        }
        s3 b: Enriched {
            bucket: "acme-b",
            prefix: "raw/!{timestamp:yyyy-QQ}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
        }
    }
}

fn main() {}
