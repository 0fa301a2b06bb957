use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: on_demand, partition_key: sensor_id, explicit_hash_key: 42 }
    }
}

fn main() {}
