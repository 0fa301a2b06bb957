use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Enriched { name: "events", capacity: on_demand, partition_key: sensor_id }
        stream b: Enriched { name: "events", capacity: on_demand, partition_key: sensor_id }
        s3 lake: Enriched { bucket: "acme-lake" }
        delivery one: a -> lake { name: "to-lake" }
        delivery two: b -> lake { name: "to-lake" }
    }
}

fn main() {}
