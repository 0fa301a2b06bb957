use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        regoin: "us-west-2",
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
    }
}

fn main() {}
