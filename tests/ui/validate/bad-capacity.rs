use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: provisioned, partition_key: sensor_id }
        stream b: Reading { capacity: ondemand, partition_key: sensor_id }
        stream c: Reading { capacity: provisioned(shard: 2), partition_key: sensor_id }
    }
}

fn main() {}
