//! The quickstart's readings, through the same transform, into a Parquet data lake: the
//! pipeline of `cargo run --release --example lake_parquet`.
//!
//! The Glue table `telemetry.readings` is derived from [`Enriched`]: kpipe reads its fields
//! (with their serde names) and `at_ms` is declared a timestamp. In AWS, `apply` creates the
//! table and the delivery stream converts to Parquet against it; locally, the engine writes
//! the same Parquet files under `./kpipe-data/acme-lake/`.

use crate::telemetry::Enriched;
pub use crate::telemetry::{Reading, sample_reading};

kpipe_runtime::pipeline! {
    /// Sensor readings into a Parquet lake, partitioned by site.
    pub pipeline Lake {
        region: "us-west-2",
        tags: { team: "data-platform" },

        /// Raw readings from every site.
        stream readings: Reading {
            name: "lake-readings",
            capacity: provisioned(shards: 2),
            partition_key: sensor_id,
        }

        /// Celsius to Fahrenheit; drops test rigs; fails implausible readings.
        transform enrich: Reading -> Enriched {
            function: crate::telemetry::enrich,
            buffer: 1MiB or 60s,
            lambda: { memory: 256MiB, timeout: 60s, architecture: arm64, bin: "lake_lambda" },
        }

        /// The curated zone: Parquet, one folder per site, queryable with Athena as
        /// `telemetry.readings`.
        s3 parquet_lake: Enriched {
            bucket: "acme-lake",
            prefix: "readings/site=!{partitionKeyFromQuery:site}/!{timestamp:yyyy/MM/dd}/",
            error_prefix: "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
            buffer: 64MiB or 300s,
            partition_keys: { site: .site },
            format: parquet(compression: snappy),
            table: { database: "telemetry", name: "readings", timestamps: [at_ms] },
        }

        /// Firehose delivery stream `lake-readings-parquet`.
        delivery to_lake: readings -> enrich -> parquet_lake { name: "lake-readings-parquet" }
    }
}
