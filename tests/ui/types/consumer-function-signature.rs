use kpipe_tests::{Audit, Reading};

fn takes_audits(_a: Audit) -> Result<(), String> {
    Ok(())
}

fn returns_a_number(_r: Reading) -> i32 {
    0
}

/// An error type without `Display`.
pub struct Opaque;

fn error_not_display(_r: Reading) -> Result<(), Opaque> {
    Err(Opaque)
}

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        consumer audits: readings -> takes_audits { starting_position: latest }
        consumer counts: readings -> returns_a_number { starting_position: latest }
        consumer opaque: readings -> error_not_display { starting_position: latest }
    }
}

fn main() {}
