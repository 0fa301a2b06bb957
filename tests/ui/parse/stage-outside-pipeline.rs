use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
}

fn main() {}
