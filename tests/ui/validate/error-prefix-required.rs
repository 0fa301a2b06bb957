use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        s3 a: Enriched {
            bucket: "acme-a",
            prefix: "raw/!{partitionKeyFromQuery:site}/",
            partition_keys: { site: .site },
        }
        s3 b: Enriched { bucket: "acme-b", prefix: "raw/!{timestamp:yyyy}/" }
    }
}

fn main() {}
