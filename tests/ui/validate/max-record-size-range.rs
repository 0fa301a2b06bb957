use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: on_demand, partition_key: sensor_id, max_record_size: 512KiB }
        stream b: Reading { capacity: on_demand, partition_key: sensor_id, max_record_size: 20MiB }
        stream c: Reading { capacity: on_demand, partition_key: sensor_id, max_record_size: 1500B }
    }
}

fn main() {}
