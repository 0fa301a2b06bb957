use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id, retention: 1MiB }
        s3 lake: Enriched { bucket: "acme-lake", buffer: 60s or 300s }
    }
}

fn main() {}
