use kpipe_runtime::Outcome;
use kpipe_tests::{Enriched, Reading};

fn by_ref(_r: &Reading) -> Outcome<Enriched> {
    Outcome::Dropped
}

fn wrong_output(_r: Reading) -> Outcome<Reading> {
    Outcome::Dropped
}

fn not_an_outcome(_r: Reading) -> i32 {
    0
}

/// An error type without `Display`: the failure's message could not be written.
pub struct Opaque;

fn error_not_display(_r: Reading) -> Result<Enriched, Opaque> {
    Err(Opaque)
}

kpipe_runtime::pipeline! {
    pipeline P {
        transform a: Reading -> Enriched { function: by_ref }
        transform b: Reading -> Enriched { function: wrong_output }
        transform c: Reading -> Enriched { function: not_an_outcome }
        transform d: Reading -> Enriched { function: error_not_display }
    }
}

fn main() {}
