use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/!{partitionKeyFromLambda:site}/!{partitionKeyFromQuery:sensor}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: .site, sensor: |e: &Enriched| e.sensor_id.clone() },
        }
    }
}

fn main() {}
