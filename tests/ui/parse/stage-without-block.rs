use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading;
    }
}

fn main() {}
