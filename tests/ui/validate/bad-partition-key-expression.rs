use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: on_demand, partition_key: "sensor_id" }
        stream b: Reading { capacity: on_demand, partition_key: sensor_id + 1 }
    }
}

fn main() {}
