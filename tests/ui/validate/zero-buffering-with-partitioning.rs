use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            buffer: 64MiB or 0s,
            partition_keys: { site: .site },
        }
    }
}

fn main() {}
