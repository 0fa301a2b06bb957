//! `pipeline!` and `include_pipeline!`.

/// Declares a pipeline: Kinesis streams, transforms, S3 destinations and the Firehose
/// deliveries that connect them, with your own Rust types.
///
/// The full language reference is `docs/language.md` in the repository; this is a summary.
///
/// # Grammar
///
/// ```text
/// pipeline! {
///     $(#[doc = "..."])*  $VIS pipeline $Name {
///         region: "us-west-2",                     // optional
///         tags: { team: "data" },                  // optional, on every resource
///
///         stream $id: $RecordType { $key: $value, ... }
///         transform $id: $Input -> $Output { function: $path_or_closure, ... }
///         s3 $id: $RecordType { bucket: "...", ... }
///         delivery $id: $stream_or_direct -> $transform? -> $s3;     // or `{ name: "..." }`
///         consumer $id: $stream -> $function_path { starting_position: latest, ... }
///     }
/// }
/// ```
///
/// # Example
///
/// ```
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Reading { sensor_id: String, site: String, celsius: f64 }
///
/// #[derive(Serialize, Deserialize)]
/// pub struct Enriched { sensor_id: String, site: String, fahrenheit: f64 }
///
/// pub fn enrich(r: Reading) -> Option<Enriched> {
///     if r.sensor_id.starts_with("test-") {
///         return None; // Dropped
///     }
///     Some(Enriched { sensor_id: r.sensor_id, site: r.site, fahrenheit: r.celsius * 1.8 + 32.0 })
/// }
///
/// kpipe_runtime::pipeline! {
///     /// Sensor telemetry into the raw data lake.
///     pub pipeline Telemetry {
///         region: "us-west-2",
///
///         stream readings: Reading {
///             name: "sensor-readings",
///             capacity: provisioned(shards: 2),
///             retention: 24h,
///             partition_key: sensor_id,
///         }
///
///         transform enrich: Reading -> Enriched {
///             function: enrich,
///             buffer: 1MiB or 60s,
///         }
///
///         s3 lake: Enriched {
///             bucket: "acme-telemetry",
///             prefix: "raw/site=!{partitionKeyFromQuery:site}/!{timestamp:yyyy/MM/dd/HH}/",
///             error_prefix: "errors/!{firehose:error-output-type}/",
///             buffer: 64MiB or 300s,
///             compression: gzip,
///             partition_keys: { site: .site },
///         }
///
///         delivery sensor_lake: readings -> enrich -> lake;
///     }
/// }
///
/// let spec = Telemetry::spec();
/// assert_eq!(spec.streams[0].name, "sensor-readings");
/// assert_eq!(spec.deliveries[0].name, "sensor-lake");
/// println!("{}", spec.to_json());
/// ```
///
/// # Generated items
///
/// For `pub pipeline Telemetry { ... }`:
///
/// - `pub struct Telemetry;` (a unit struct, `Copy + Default + Debug`), with the doc comment;
/// - `Telemetry::spec()`: the [`PipelineSpec`](crate::spec::PipelineSpec);
/// - `Telemetry::local()`: the local engine's builder; `Telemetry::cloudformation()`: the
///   template; `Telemetry::aws(&config)`: provisioning (feature `aws`); `Telemetry::main()`: the
///   command line (feature `cli`);
/// - one associated function per stage, named like the stage: `Telemetry::readings()` returns a
///   [`StreamDef<Reading>`](crate::StreamDef), `Telemetry::enrich()` a
///   [`TransformDef<Reading, Enriched>`](crate::TransformDef), `Telemetry::lake()` an
///   [`S3Def<Enriched>`](crate::S3Def), `Telemetry::sensor_lake()` a
///   [`DeliveryDef`](crate::DeliveryDef);
/// - `impl kpipe_runtime::Pipeline for Telemetry`.
///
/// # Errors
///
/// Every rule that can be checked at compile time is, with the error on the offending token:
///
/// ```text
/// error: retention must be between 24h and 8760h, found 12h
///
///        = note: Kinesis keeps records 24 hours to 365 days (Kinesis Data Streams, Change the data retention period: <https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html>)
///   --> src/main.rs:9:24
///    |
/// 9  |             retention: 12h,
///    |                        ^^^
/// ```
///
/// All errors of one invocation are reported together, and the pipeline type and its stage
/// functions are still generated, so one typo does not bury the rest of your crate in errors.
#[cfg(feature = "macros")]
#[macro_export]
macro_rules! pipeline {
    ($($body:tt)*) => {
        $crate::__private::expand_pipeline! { $crate; $($body)* }
    };
}

/// The `main` of a Lambda binary (feature `lambda`): a transform's Firehose handler, or a
/// consumer's Kinesis handler.
///
/// ```ignore
/// kpipe_runtime::lambda_main!(Telemetry, enrich);        // transform: Firehose events
/// kpipe_runtime::lambda_main!(Telemetry, frost_alerts);  // consumer: Kinesis events
/// ```
///
/// Build it with `cargo lambda build --release` and deploy the binary as the function the
/// pipeline's template names.
///
/// The binary's memory allocator is [`lambda::Allocator`](crate::lambda::Allocator)
/// (mimalloc), which makes a record's allocations cheaper than the system's. A binary that
/// declares its own `#[global_allocator]` says so, and keeps it:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOCATOR: std::alloc::System = std::alloc::System;
///
/// kpipe_runtime::lambda_main!(Telemetry, enrich, allocator: own);
/// ```
#[cfg(feature = "lambda")]
#[macro_export]
macro_rules! lambda_main {
    ($pipeline:ident, $stage:ident) => {
        #[global_allocator]
        static KPIPE_ALLOCATOR: $crate::lambda::Allocator = $crate::lambda::Allocator;

        $crate::lambda_main!($pipeline, $stage, allocator: own);
    };
    ($pipeline:ident, $stage:ident, allocator: own) => {
        fn main() -> ::std::process::ExitCode {
            // A typo in the transform's or consumer's name is a compile error here.
            $crate::lambda::serve::<$pipeline, _, _>($pipeline::$stage())
        }
    };
}

/// Includes a pipeline that `kpipe_codegen::build` generated from `pipelines/<name>.kpipe`
/// into `OUT_DIR`.
///
/// ```ignore
/// kpipe_runtime::include_pipeline!("telemetry");
/// ```
///
/// With a custom `out_dir`, include the file yourself:
/// `include!(concat!(env!("OUT_DIR"), "/telemetry.rs"));`
#[macro_export]
macro_rules! include_pipeline {
    ($name:literal) => {
        ::core::include!(::core::concat!(::core::env!("OUT_DIR"), "/", $name, ".rs"));
    };
}
