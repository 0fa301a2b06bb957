//! Runnable kpipe pipelines. Start with `cargo run --release --example quickstart`.
//!
//! The [`telemetry`] module holds the sensor-telemetry pipeline of the quickstart, so that
//! tests and benchmarks use exactly the declaration the quickstart runs; [`lake`] the same
//! readings as a Parquet lake (`cargo run --release --example lake_parquet`).

pub mod lake;
pub mod telemetry;
