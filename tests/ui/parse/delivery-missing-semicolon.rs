use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: kpipe_tests::enrich }
        s3 lake: Enriched { bucket: "acme-lake" }
        delivery a: readings -> enrich -> lake
        delivery b: readings -> enrich -> lake;
    }
}

fn main() {}
