use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: , partition_key: sensor_id }
    }
}

fn main() {}
