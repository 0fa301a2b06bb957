//! Sensor telemetry into the raw data lake: the pipeline of the quickstart.

use kpipe_runtime::Outcome;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};

/// A raw reading, as sensors put it on the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Sensor identifier; ids starting with `test-` belong to test rigs.
    pub sensor_id: String,
    /// Site the sensor is installed at.
    pub site: String,
    /// Temperature in degrees Celsius.
    pub celsius: f64,
    /// Milliseconds since the Unix epoch, as measured by the sensor.
    pub at_ms: u64,
}

/// A reading after the transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Enriched {
    /// Sensor identifier.
    pub sensor_id: String,
    /// Site the sensor is installed at.
    pub site: String,
    /// Temperature in degrees Fahrenheit.
    pub fahrenheit: f64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

const SITES: [&str; 6] = ["berlin", "oslo", "lisbon", "austin", "osaka", "nairobi"];

/// The `n`-th sample reading: deterministic, from 400 sensors over 6 sites; 3% come from test
/// rigs (which the transform drops) and 2% are below absolute zero (which it fails). The
/// quickstart puts these, and so does `quickstart run --generate N`.
pub fn sample_reading(n: u64) -> Reading {
    // splitmix64: a well-mixed hash of `n`, so any record can be generated on its own.
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut x = z;
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^ (x >> 31)
    };
    let roll = next() % 1000;
    let sensor = next() % 400;
    let sensor_id = if roll < 30 {
        format!("test-{sensor}")
    } else {
        format!("s-{sensor:03}")
    };
    let celsius = if (30..50).contains(&roll) {
        -300.0
    } else {
        (next() % 600) as f64 / 10.0 - 10.0
    };
    Reading {
        sensor_id,
        site: SITES[(sensor % SITES.len() as u64) as usize].to_owned(),
        celsius,
        // 2026-01-01T00:00:00Z plus 10 ms per reading.
        at_ms: 1_767_225_600_000 + n * 10,
    }
}

/// The transform: converts to Fahrenheit, drops readings from test rigs, and fails readings
/// that cannot be physical (below absolute zero, or not a number).
pub fn enrich(r: Reading) -> Outcome<Enriched> {
    if r.sensor_id.starts_with("test-") {
        return Outcome::Dropped;
    }
    if r.celsius.is_nan() || r.celsius < -273.15 {
        return Outcome::failed(format!(
            "implausible temperature {} °C from {}",
            r.celsius, r.sensor_id
        ));
    }
    Outcome::Ok(Enriched {
        sensor_id: r.sensor_id,
        site: r.site,
        fahrenheit: r.celsius * 9.0 / 5.0 + 32.0,
        at_ms: r.at_ms,
    })
}

/// Frost alerts this process raised (a stand-in for paging someone).
pub static FROST_ALERTS: AtomicU64 = AtomicU64::new(0);

/// The frost-alerts consumer: reads raw readings straight from the stream (a Lambda function
/// behind an event source mapping) and raises an alert for sub-zero readings from real
/// sensors. A reading that cannot be physical is an error: the batch is retried from it, split
/// in halves until it is alone, then (after `maximum_retries`) discarded.
pub fn frost_alert(r: Reading) -> Result<(), String> {
    if r.celsius.is_nan() || r.celsius < -273.15 {
        return Err(format!(
            "implausible temperature {} °C from {}",
            r.celsius, r.sensor_id
        ));
    }
    if r.celsius < 0.0 && !r.sensor_id.starts_with("test-") {
        FROST_ALERTS.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

kpipe_runtime::pipeline! {
    /// Sensor telemetry into the raw data lake.
    pub pipeline Telemetry {
        region: "us-west-2",
        tags: { team: "data-platform" },

        /// Raw readings from every site.
        stream readings: Reading {
            name: "sensor-readings",
            capacity: provisioned(shards: 2),
            retention: 24h,
            partition_key: sensor_id,
        }

        /// Celsius to Fahrenheit; drops test rigs; fails implausible readings.
        transform enrich: Reading -> Enriched {
            function: crate::telemetry::enrich,
            buffer: 1MiB or 60s,
            retries: 3,
            lambda: { memory: 256MiB, timeout: 60s, architecture: arm64, bin: "quickstart_lambda" },
        }

        /// The raw zone of the data lake, partitioned by site.
        s3 lake: Enriched {
            bucket: "acme-telemetry",
            prefix: "raw/site=!{partitionKeyFromLambda:site}/!{timestamp:yyyy/MM/dd/HH}/",
            error_prefix: "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
            buffer: 64MiB or 300s,
            compression: gzip,
            partition_keys: { site: |e: &Enriched| e.site.clone() },
        }

        /// Firehose delivery stream `sensor-lake`.
        delivery sensor_lake: readings -> enrich -> lake;

        /// Frost alerts, straight from the stream.
        consumer frost_alerts: readings -> crate::telemetry::frost_alert {
            batch_size: 500,
            starting_position: latest,
            bisect_on_error: true,
            maximum_retries: 10,
            lambda: { memory: 128MiB, timeout: 30s, architecture: arm64 },
        }
    }
}
