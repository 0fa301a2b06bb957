use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        transform a: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 5MiB or 60s }
        transform b: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 100KiB }
        transform c: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 1MiB or 1000s }
        // Just under 0.2 MiB: the message says what to write instead.
        transform d: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 200KiB }
        transform e: Reading -> Enriched { function: kpipe_tests::enrich, buffer: 0.2MB }
    }
}

fn main() {}
