use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{partitionKeyFromQuery:site}/!{firehose:error-output-type}/",
            partition_keys: { site: .site },
        }
    }
}

fn main() {}
