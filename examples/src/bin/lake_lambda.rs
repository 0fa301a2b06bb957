//! The Parquet lake's transform as a Lambda function: the Firehose data-transformation handler
//! of `Lake::enrich`. Build it with `cargo lambda build --release --bin lake_lambda`.

use kpipe_examples::lake::Lake;

kpipe_runtime::lambda_main!(Lake, enrich);
