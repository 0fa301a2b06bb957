use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading {
            capacity: on_demand,
            partition_key: sensor_id,
            retension: 48h,
            colour: "blue",
        }
    }
}

fn main() {}
