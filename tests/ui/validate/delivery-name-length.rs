use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        stream enriched: Enriched { capacity: on_demand, partition_key: sensor_id }
        s3 lake: Enriched { bucket: "acme-lake" }
        delivery d: enriched -> lake { name: "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd" }
    }
}

fn main() {}
