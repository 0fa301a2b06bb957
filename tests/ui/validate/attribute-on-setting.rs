kpipe_runtime::pipeline! {
    pipeline P {
        #[doc = "the region"]
        region: "us-west-2",
    }
}

fn main() {}
