use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        s3 lake: Enriched { bucket: acme, newline: yes, create_bucket: "true" }
        transform enrich: Reading -> Enriched { function: kpipe_tests::enrich, retries: 3x }
    }
}

fn main() {}
