//! The Lambda handlers of a pipeline (feature `lambda`): the Firehose data-transformation
//! handler of a transform, and the Kinesis handler of a consumer.
//!
//! The handler runs each record through the same
//! [`RecordProcessor`](crate::pipeline::RecordProcessor) as the local engine
//! (decode, call your function, encode, delimiter, partition keys), so a pipeline behaves the
//! same locally and in AWS. A Lambda binary is one line:
//!
//! ```ignore
//! kpipe_runtime::lambda_main!(Telemetry, enrich);
//! ```
//!
//! - Every `recordId` is echoed exactly once; results are `Ok` (with the output and
//!   `metadata.partitionKeys`), `Dropped` or `ProcessingFailed` (Amazon Data Firehose, Data transformation and status model: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>).
//! - A record whose data is not valid base64, does not decode into the input type, or makes
//!   your function panic fails alone; the handler itself never panics.
//! - The response stays under Lambda's 6 MB payload limit (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>): records whose
//!   output would not fit are answered `ProcessingFailed` (and logged) instead of producing a
//!   response Firehose would reject as a whole.
//! - A large event is processed on as many threads as the function's memory buys vCPUs
//!   ([`THREADS_VAR`] overrides), while it is being read; the response is byte for byte the
//!   one a single thread writes.
//!
//! The consumer handler ([`ConsumerHandler`]) answers a Kinesis event with a partial batch
//! response (AWS Lambda, Using Lambda with Kinesis Data Streams: <https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html>): records are consumed in order, and at the first failure its
//! sequence number is returned in `batchItemFailures` and the rest of the batch is left
//! alone, since Lambda retries from that record anyway (processing the later ones now would
//! only run them twice).

mod aggregate;
mod batch;
mod consumer;
mod firehose;
mod response;

pub use self::consumer::{
    ConsumerHandler, KinesisStreamData, KinesisStreamEvent, KinesisStreamRecord, WindowResponse,
};
pub use self::firehose::{FirehoseHandler, THREADS_VAR, TransformationEvent, TransformationRecord};

use crate::pipeline::Pipeline;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Lambda's synchronous response limit: 6 MB ("Lambda quotas",
/// <https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html>).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// Why a handler could not be built, or an invocation could not be answered.
#[derive(Debug)]
#[non_exhaustive]
pub enum LambdaError {
    /// The transform is not this pipeline's, or no delivery of the pipeline uses it.
    UnknownTransform(String),
    /// The consumer is not this pipeline's.
    UnknownConsumer(String),
    /// The invocation's payload is not the event the handler answers.
    InvalidEvent(String),
    /// The handler failed itself (a bug); the invocation fails, so Firehose sends the records
    /// again.
    Internal(String),
    /// Even with every record answered `ProcessingFailed`, the response would exceed Lambda's
    /// 6 MB (an event of very many tiny records): the invocation fails, so Firehose retries
    /// it and then writes its records to the error output.
    ResponseTooLarge {
        /// The bytes the smallest possible response takes.
        bytes: usize,
    },
}

impl std::fmt::Display for LambdaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LambdaError::UnknownTransform(t) => write!(
                f,
                "transform `{t}` is not this pipeline's, or no delivery of it uses the transform"
            ),
            LambdaError::UnknownConsumer(c) => {
                write!(f, "consumer `{c}` is not this pipeline's")
            }
            LambdaError::InvalidEvent(e) => write!(f, "not a Firehose transformation event: {e}"),
            LambdaError::Internal(e) => write!(f, "internal error in the kpipe handler: {e}"),
            LambdaError::ResponseTooLarge { bytes } => write!(
                f,
                "the event has so many records that answering each takes {bytes} bytes, more \
                 than the {MAX_RESPONSE_BYTES} bytes Lambda returns (\"Lambda quotas\", \
                 https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html); \
                 lower the transform's buffer size"
            ),
        }
    }
}

impl std::error::Error for LambdaError {}

/// A stage a Lambda function serves: a transform or a consumer, from its handle
/// (`Telemetry::enrich().into()`).
#[derive(Clone, Debug)]
pub enum Stage<I, O> {
    /// A transform, which Firehose invokes.
    Transform(crate::TransformDef<I, O>),
    /// A consumer, which an event source mapping invokes.
    Consumer(crate::ConsumerDef<I>),
}

impl<I, O> From<crate::TransformDef<I, O>> for Stage<I, O> {
    fn from(t: crate::TransformDef<I, O>) -> Self {
        Stage::Transform(t)
    }
}

impl<I> From<crate::ConsumerDef<I>> for Stage<I, ()> {
    fn from(c: crate::ConsumerDef<I>) -> Self {
        Stage::Consumer(c)
    }
}

/// Runs the handler of pipeline `P`'s transform or consumer under `lambda_runtime`: the body
/// of a Lambda binary's `main` (see [`lambda_main!`](crate::lambda_main)).
pub fn serve<P: Pipeline, I, O>(stage: impl Into<Stage<I, O>>) -> std::process::ExitCode {
    crate::logging::init(true);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let served = match stage.into() {
        Stage::Transform(transform) => {
            let handler = match FirehoseHandler::new::<P, I, O>(transform) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            // The event's bytes go to `FirehoseHandler::handle_json` as they came (`RawBody`): no
            // parse by lambda_runtime, no tree of the event or of the response.
            let bodies = RawBodies::default();
            let service = lambda_runtime::service_fn({
                let bodies = bodies.clone();
                move |event: lambda_runtime::LambdaEvent<()>| {
                    let (handler, body) = (handler.clone(), bodies.take(&event.context.request_id));
                    async move {
                        let body = body.ok_or_else(|| {
                            LambdaError::Internal("the invocation's body went missing".into())
                        })?;
                        let text = handler.handle_json(&body).await?;
                        // Validates the JSON once more (1.2 ms for 6 MB); serde_json has no other
                        // public way to send JSON text as it is.
                        Ok::<_, lambda_runtime::Error>(serde_json::value::RawValue::from_string(
                            text,
                        )?)
                    }
                }
            });
            let runtime_api = lambda_runtime::Runtime::new(service)
                .layer(lambda_runtime::layers::TracingLayer::new())
                .layer(RawBody(bodies));
            runtime.block_on(runtime_api.run())
        }
        Stage::Consumer(consumer) => {
            let handler = match ConsumerHandler::new::<P, I>(consumer) {
                Ok(h) => h,
                Err(e) => {
                    eprintln!("error: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            if handler.is_windowed() {
                let service = lambda_runtime::service_fn(
                    move |event: lambda_runtime::LambdaEvent<KinesisStreamEvent>| {
                        let handler = handler.clone();
                        async move {
                            handler
                                .handle_window(event.payload)
                                .await
                                .map_err(lambda_runtime::Error::from)
                        }
                    },
                );
                runtime.block_on(lambda_runtime::run(service))
            } else {
                let service = lambda_runtime::service_fn(
                    move |event: lambda_runtime::LambdaEvent<KinesisStreamEvent>| {
                        let handler = handler.clone();
                        async move {
                            Ok::<_, lambda_runtime::Error>(handler.handle(event.payload).await)
                        }
                    },
                );
                runtime.block_on(lambda_runtime::run(service))
            }
        }
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The bodies of invocations in flight, by request id.
#[derive(Clone, Default)]
struct RawBodies(Arc<Mutex<HashMap<String, bytes::Bytes>>>);

impl RawBodies {
    fn put(&self, request_id: String, body: bytes::Bytes) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(request_id, body);
    }

    fn take(&self, request_id: &str) -> Option<bytes::Bytes> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(request_id)
    }
}

/// A layer of the Lambda runtime that takes an invocation's body before lambda_runtime parses
/// it (with serde_json, 1.3 ms for a 6 MB event) and leaves `null` in its place: the handler
/// reads the bytes itself, in place, with sonic-rs.
struct RawBody(RawBodies);

impl<S> lambda_runtime::tower::Layer<S> for RawBody {
    type Service = RawBodyService<S>;

    fn layer(&self, inner: S) -> RawBodyService<S> {
        RawBodyService {
            inner,
            bodies: self.0.clone(),
        }
    }
}

/// The service of [`RawBody`].
struct RawBodyService<S> {
    inner: S,
    bodies: RawBodies,
}

impl<S> lambda_runtime::Service<lambda_runtime::LambdaInvocation> for RawBodyService<S>
where
    S: lambda_runtime::Service<lambda_runtime::LambdaInvocation>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        let body = std::mem::replace(&mut invocation.body, bytes::Bytes::from_static(b"null"));
        self.bodies.put(invocation.context.request_id.clone(), body);
        self.inner.call(invocation)
    }
}
