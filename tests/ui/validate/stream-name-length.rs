use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { name: "sssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssssss", capacity: on_demand, partition_key: sensor_id }
        stream b: Reading { name: "", capacity: on_demand, partition_key: sensor_id }
    }
}

fn main() {}
