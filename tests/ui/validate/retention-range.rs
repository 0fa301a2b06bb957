use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: on_demand, partition_key: sensor_id, retention: 12h }
        stream b: Reading { capacity: on_demand, partition_key: sensor_id, retention: 366d }
    }
}

fn main() {}
