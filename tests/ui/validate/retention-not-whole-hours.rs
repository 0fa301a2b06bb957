use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id, retention: 1450min }
    }
}

fn main() {}
