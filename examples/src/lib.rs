//! Runnable kpipe pipelines. Start with `cargo run --release --example quickstart`.
//!
//! The [`telemetry`] module holds the sensor-telemetry pipeline of the quickstart, so that
//! tests and benchmarks use exactly the declaration the quickstart runs.

pub mod telemetry;
