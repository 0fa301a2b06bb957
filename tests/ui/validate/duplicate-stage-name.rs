use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        s3 readings: Enriched { bucket: "acme-lake" }
    }
}

fn main() {}
