use kpipe_tests::NotARecord;

kpipe_runtime::pipeline! {
    pipeline P {
        stream things: NotARecord { capacity: on_demand, partition_key: value }
    }
}

fn main() {}
