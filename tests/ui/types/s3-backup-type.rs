use kpipe_runtime::Outcome;
use kpipe_tests::{Enriched, Reading};

fn enrich(r: Reading) -> Outcome<Enriched> {
    Outcome::Ok(Enriched { sensor_id: r.sensor_id, site: r.site, fahrenheit: 0.0 })
}

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich }
        s3 lake: Enriched { bucket: "acme-lake" }
        s3 raw: Enriched { bucket: "acme-raw" }
        delivery d: readings -> enrich -> lake { s3_backup: raw }
    }
}

fn main() {}
