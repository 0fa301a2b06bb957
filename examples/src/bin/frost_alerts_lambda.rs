//! The quickstart's `frost_alerts` consumer as a Lambda binary: Kinesis events in, partial
//! batch responses (`batchItemFailures`) out. Build it with
//! `cargo lambda build --release --bin frost_alerts_lambda`.

use kpipe_examples::telemetry::Telemetry;

kpipe_runtime::lambda_main!(Telemetry, frost_alerts);
