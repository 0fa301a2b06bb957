use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        strem readings: Reading { capacity: on_demand, partition_key: sensor_id }
        sink lake: Enriched { bucket: "acme-lake" }
    }
}

fn main() {}
