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
mod base64;
mod batch;
mod consumer;
mod event;
mod firehose;
mod response;

pub use self::consumer::{
    ConsumerHandler, KinesisStreamData, KinesisStreamEvent, KinesisStreamRecord, WindowResponse,
};
pub use self::firehose::{FirehoseHandler, THREADS_VAR, TransformationEvent, TransformationRecord};
pub use self::response::ResponseText;

/// The memory allocator [`lambda_main!`](crate::lambda_main) installs in a Lambda binary:
/// mimalloc (<https://github.com/microsoft/mimalloc>), through the `mimalloc` crate.
///
/// A transform allocates for every record (the strings of its input and output types, each
/// dropped once the record is answered), over and over at the same few sizes: what a
/// thread-local, size-segregated allocator does best. Measured on the Firehose handler's
/// bench with one thread, it took about 4% fewer instructions a record than glibc's `malloc`
/// (BENCHMARKS.md). A binary with a `main` of its own can install it the same way:
///
/// ```ignore
/// #[global_allocator]
/// static ALLOCATOR: kpipe_runtime::lambda::Allocator = kpipe_runtime::lambda::Allocator;
/// ```
pub use mimalloc::MiMalloc as Allocator;

use crate::pipeline::Pipeline;
use std::sync::Arc;

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
            // The layer `Answer` answers every invocation itself (see there): lambda_runtime
            // polls for events and calls it; the handler given to `Runtime::new` is never
            // reached.
            let answer = Answer {
                handler,
                client: Arc::new(lambda_runtime_api_client::PooledClient::builder().build()),
            };
            let unreachable =
                lambda_runtime::service_fn(|_: lambda_runtime::LambdaEvent<()>| async {
                    Err::<(), _>(lambda_runtime::Error::from(LambdaError::Internal(
                        "the invocation reached lambda_runtime's own handler".into(),
                    )))
                });
            let runtime_api = lambda_runtime::Runtime::new(unreachable)
                .layer(answer)
                .layer(lambda_runtime::layers::TracingLayer::new());
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

/// A layer of the Lambda runtime that answers a Firehose invocation itself, bytes in and bytes
/// out: the event's body goes to [`FirehoseHandler::handle_json`] as it came, and the response
/// text is posted to the runtime API as it is. Through lambda_runtime's own path the event
/// would be parsed once more (serde_json, 1.3 ms for a 6 MB event) and the response checked
/// once more and copied (`RawValue`, 1.3 ms), the only public way there to send JSON text.
///
/// The requests are the ones lambda_runtime sends (AWS Lambda, Using the Lambda runtime API
/// for custom runtimes: <https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html>):
/// `POST /2018-06-01/runtime/invocation/{id}/response` with the response, or `/error` with
/// `{"errorType", "errorMessage"}` when the invocation fails, echoing the invocation id
/// header when the runtime API sent one.
struct Answer {
    handler: FirehoseHandler,
    client: Arc<lambda_runtime_api_client::PooledClient>,
}

impl<S> lambda_runtime::tower::Layer<S> for Answer {
    type Service = Answer;

    fn layer(&self, _lambda_runtime_s_own: S) -> Answer {
        Answer {
            handler: self.handler.clone(),
            client: Arc::clone(&self.client),
        }
    }
}

/// The header the runtime API may send with an invocation, to be echoed with its answer.
const INVOCATION_ID_HEADER: &str = "lambda-runtime-invocation-id";

impl lambda_runtime::Service<lambda_runtime::LambdaInvocation> for Answer {
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), lambda_runtime::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        let handler = self.handler.clone();
        let client = Arc::clone(&self.client);
        Box::pin(async move {
            let request_id = invocation.context.request_id;
            let invocation_id = invocation
                .parts
                .headers
                .get(INVOCATION_ID_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let answered = crate::pipeline::guard::CatchUnwind(Box::pin(
                handler.handle_json_text(&invocation.body),
            ))
            .await;
            let (path, body) = match answered {
                Ok(Ok(text)) => (
                    "response",
                    lambda_runtime_api_client::body::Body::from(text),
                ),
                Ok(Err(e)) => ("error", error_body(&request_id, &e)),
                Err(panic) => (
                    "error",
                    error_body(
                        &request_id,
                        &LambdaError::Internal(format!("panicked: {panic}")),
                    ),
                ),
            };
            let mut request = lambda_runtime_api_client::build_request()
                .method("POST")
                .uri(format!(
                    "/2018-06-01/runtime/invocation/{request_id}/{path}"
                ));
            if path == "error" {
                request = request.header("lambda-runtime-function-error-type", "unhandled");
            }
            if let Some(id) = invocation_id {
                request = request.header(INVOCATION_ID_HEADER, id);
            }
            let sent = client.call(request.body(body)?).await?;
            // As lambda_runtime does: a refused answer (the invocation timed out) is logged and
            // the runtime goes on to the next invocation.
            if !sent.status().is_success() {
                tracing::error!(
                    request_id,
                    status = %sent.status(),
                    "the Lambda runtime API refused the answer"
                );
            }
            Ok(())
        })
    }
}

/// The body of an `/error` post, `{"errorType": "kpipe::LambdaError", "errorMessage": ..}`;
/// the error is logged too.
fn error_body(request_id: &str, error: &LambdaError) -> lambda_runtime_api_client::body::Body {
    tracing::error!(request_id, error = %error, "the invocation failed");
    let diagnostic = lambda_runtime::Diagnostic {
        error_type: "kpipe::LambdaError".to_owned(),
        error_message: error.to_string(),
    };
    let json = serde_json::to_vec(&diagnostic).unwrap_or_else(|_| b"{}".to_vec());
    lambda_runtime_api_client::body::Body::from(json)
}
