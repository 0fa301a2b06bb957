use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream a: Reading { capacity: on_demand, partition_key: |r: &Reading| vec![r.celsius] }
    }
}

fn main() {}
