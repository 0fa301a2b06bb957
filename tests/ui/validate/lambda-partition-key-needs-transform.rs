use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        stream enriched: Enriched { capacity: on_demand, partition_key: sensor_id }
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |e: &Enriched| e.site.clone() },
        }
        delivery d: enriched -> lake;
    }
}

fn main() {}
