use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { retention: 24h }
        transform enrich: Reading -> Enriched { retries: 2 }
        s3 lake: Enriched { compression: gzip }
    }
}

fn main() {}
