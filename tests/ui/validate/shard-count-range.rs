use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: provisioned(shards: 0), partition_key: sensor_id }
        stream b: Reading { capacity: provisioned(shards: 10001), partition_key: sensor_id }
    }
}

fn main() {}
