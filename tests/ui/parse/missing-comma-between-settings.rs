use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand retention: 48h, partition_key: sensor_id }
    }
}

fn main() {}
