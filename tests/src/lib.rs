//! Support code for the workspace tests: record types and functions shared by the UI
//! cases (`ui/`), the pass cases (`pass/`), and the pipelines that `build.rs` compiles from
//! `pipelines/*.kpipe`.

use kpipe_runtime::Outcome;
use serde::{Deserialize, Serialize};

/// A raw reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Sensor id.
    pub sensor_id: String,
    /// Site.
    pub site: String,
    /// Degrees Celsius.
    pub celsius: f64,
}

/// A transformed reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enriched {
    /// Sensor id.
    pub sensor_id: String,
    /// Site.
    pub site: String,
    /// Degrees Fahrenheit.
    pub fahrenheit: f64,
}

/// Another record type, for type-mismatch cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// Who did it.
    pub actor: String,
}

/// A type that is not a record (no serde impls).
#[derive(Clone, Debug, PartialEq)]
pub struct NotARecord {
    /// Anything.
    pub value: u32,
}

/// The reference transform: test sensors are dropped, implausible readings fail.
pub fn enrich(r: Reading) -> Outcome<Enriched> {
    if r.sensor_id.starts_with("test-") {
        return Outcome::Dropped;
    }
    if r.celsius < -273.15 {
        return Outcome::failed("below absolute zero");
    }
    Outcome::Ok(Enriched {
        sensor_id: r.sensor_id,
        site: r.site,
        fahrenheit: r.celsius * 1.8 + 32.0,
    })
}

/// The reference transform returning `Result`.
pub fn enrich_result(r: Reading) -> Result<Enriched, String> {
    match enrich(r) {
        Outcome::Ok(e) => Ok(e),
        Outcome::Dropped => Err("dropped".into()),
        Outcome::Failed(m) => Err(m),
    }
}

/// The reference transform as an async function.
pub async fn enrich_async(r: Reading) -> Option<Enriched> {
    match enrich(r) {
        Outcome::Ok(e) => Some(e),
        _ => None,
    }
}

/// A transform that panics on a sentinel input, to show a panic fails one record only.
pub fn enrich_or_panic(r: Reading) -> Outcome<Enriched> {
    if r.sensor_id == "panic" {
        panic!("sensor {} made the transform panic", r.sensor_id);
    }
    enrich(r)
}

/// The pipelines compiled from `pipelines/*.kpipe` by this crate's build script.
pub mod from_build {
    kpipe_runtime::include_pipeline!("telemetry");
}

/// The same declaration as `pipelines/telemetry.kpipe`, through the macro.
pub mod from_macro {
    kpipe_runtime::pipeline! {
        /// Sensor telemetry into the raw data lake (the same declaration as `tests/pipelines.rs`).
        pub pipeline Telemetry {
            region: "us-west-2",

            stream readings: crate::Reading {
                name: "sensor-readings",
                capacity: provisioned(shards: 2),
                retention: 24h,
                partition_key: sensor_id,
            }

            transform enrich: crate::Reading -> crate::Enriched {
                function: crate::enrich,
                buffer: 1MiB or 60s,
                retries: 3,
            }

            s3 lake: crate::Enriched {
                bucket: "acme-telemetry",
                prefix: "raw/site=!{partitionKeyFromQuery:site}/!{timestamp:yyyy/MM/dd/HH}/",
                error_prefix: "errors/!{firehose:error-output-type}/",
                buffer: 64MiB or 300s,
                compression: gzip,
                partition_keys: { site: .site },
            }

            delivery sensor_lake: readings -> enrich -> lake;
        }
    }
}
