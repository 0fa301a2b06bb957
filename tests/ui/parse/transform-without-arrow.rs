use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        transform enrich: Reading Enriched { function: kpipe_tests::enrich }
    }
}

fn main() {}
