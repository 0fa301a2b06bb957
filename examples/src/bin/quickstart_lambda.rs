//! The quickstart's transform as a Lambda function: the Firehose data-transformation handler
//! of `Telemetry::enrich`. Build it with `cargo lambda build --release --bin quickstart_lambda`.

use kpipe_examples::telemetry::Telemetry;

kpipe_runtime::lambda_main!(Telemetry, enrich);
