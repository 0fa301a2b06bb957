kpipe_runtime::pipeline! {
    pipeline P {
        region: "us-west",
    }
}

fn main() {}
