use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: on_demand, partition_key: sensor }
        stream b: Reading { capacity: on_demand, partition_key: |r: &Reading| r.celsius as u8 == 0 || true }
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: .sitee },
        }
    }
}

fn main() {}
