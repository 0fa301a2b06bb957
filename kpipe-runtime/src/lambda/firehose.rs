//! The Firehose data-transformation handler of a transform (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>).
//!
//! One invocation: read the event in place, run every record through the delivery's
//! [`RecordProcessor`] (the local engine's), and write the answers straight into the
//! response's JSON. Large events are cut into contiguous runs of records processed on as many
//! threads as the function's memory buys vCPUs ([`THREADS_VAR`] overrides); the answers keep
//! the event's order, and are byte for byte those of one thread.

use super::LambdaError;
use super::batch::{self, Feeder, Record, Route};
use super::event::{self, Item};
use super::response::{ResponseText, Style};
use crate::pipeline::{Pipeline, RecordProcessor, TransformDef};
use aws_lambda_events::firehose::{KinesisFirehoseResponse, KinesisFirehoseResponseRecord};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::sync::{Arc, Mutex};

/// The environment variable that sets how many threads one invocation uses (default: one per
/// 1,769 MB of the function's memory, at most the CPUs it sees; outside Lambda, the CPUs).
pub const THREADS_VAR: &str = "KPIPE_LAMBDA_THREADS";

/// The transformation event as Firehose sends it (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>), read leniently: a
/// record's `data` stays a string until the handler decodes it, so one bad record cannot fail
/// the whole invocation.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformationEvent {
    /// `arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME`.
    #[serde(default)]
    pub delivery_stream_arn: Option<String>,
    /// The records.
    #[serde(default)]
    pub records: Vec<TransformationRecord>,
}

/// One record of a [`TransformationEvent`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformationRecord {
    /// The id to echo.
    #[serde(default)]
    pub record_id: String,
    /// Arrival time, epoch milliseconds.
    #[serde(default)]
    pub approximate_arrival_timestamp: i64,
    /// The data, base64.
    #[serde(default)]
    pub data: String,
}

/// The Firehose handler of one transform.
#[derive(Clone)]
pub struct FirehoseHandler {
    transform: &'static str,
    /// `(delivery stream name, processor)` for each delivery using the transform.
    deliveries: Vec<(&'static str, Arc<dyn RecordProcessor>)>,
    threads: usize,
}

impl std::fmt::Debug for FirehoseHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirehoseHandler")
            .field("transform", &self.transform)
            .field("threads", &self.threads)
            .finish()
    }
}

/// Event bytes per record, for room made before the event is read: with Firehose's 56-character
/// record ids, a record of 100 bytes of data takes about 250 bytes of the event (fewer records
/// than estimated cost some unused room, more a few reallocations).
const EVENT_BYTES_PER_RECORD: usize = 256;

/// Memory at which a Lambda function gets one vCPU-second of CPU per second; CPU is allocated in
/// proportion to memory (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>).
const MB_PER_VCPU: usize = 1769;

/// How many threads an invocation uses: [`THREADS_VAR`] when it is a positive number; else as
/// many vCPUs' worth of CPU as the function's memory buys (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`
/// over 1,769 MB, rounded up), at most the CPUs this process sees; outside Lambda, those CPUs.
fn threads_from_env() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    threads_from(
        std::env::var(THREADS_VAR).ok(),
        std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
        cpus,
    )
}

fn threads_from(var: Option<String>, memory_mb: Option<String>, cpus: usize) -> usize {
    let default = match memory_mb.and_then(|m| m.trim().parse::<usize>().ok()) {
        // A function sees more CPUs than its memory pays for (two at 128 MB): threads beyond
        // its share of CPU time would only take turns.
        Some(mb) => mb.div_ceil(MB_PER_VCPU).clamp(1, cpus.max(1)),
        None => cpus,
    };
    match var {
        None => default,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!(
                    "kpipe: {THREADS_VAR}={v:?} is not a positive number of threads; using {default}"
                );
                default
            }
        },
    }
}

impl FirehoseHandler {
    /// The handler of pipeline `P`'s transform (`Telemetry::enrich()`). It uses as many
    /// threads per invocation as [`KPIPE_LAMBDA_THREADS`](THREADS_VAR) says, else one per
    /// 1,769 MB of the function's memory (Lambda's vCPU share), at most the CPUs it sees.
    ///
    /// # Errors
    /// [`LambdaError::UnknownTransform`] when the transform is not `P`'s, or no delivery uses
    /// it.
    pub fn new<P: Pipeline, I, O>(transform: TransformDef<I, O>) -> Result<Self, LambdaError> {
        let id = transform.spec.id;
        let deliveries: Vec<_> = P::deliveries()
            .into_iter()
            .filter(|d| d.spec().transform == Some(id))
            .map(|d| (d.spec().name, Arc::clone(d.processor())))
            .collect();
        let transform = P::SPEC
            .transform(id)
            .filter(|t| *t == transform.spec && !deliveries.is_empty())
            .map(|t| t.id)
            .ok_or_else(|| LambdaError::UnknownTransform(id.to_owned()))?;
        Ok(FirehoseHandler {
            transform,
            deliveries,
            threads: threads_from_env(),
        })
    }

    /// The same handler using at most `threads` threads per invocation (at least one). One
    /// thread processes the records in order on the caller's thread.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// How many threads an invocation may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The processor for the delivery stream named in the event's ARN (or the only one).
    fn processor(&self, arn: Option<&str>) -> Option<&Arc<dyn RecordProcessor>> {
        let name = arn
            .and_then(|a| a.rsplit_once("deliverystream/"))
            .map(|(_, n)| n);
        match name.and_then(|n| self.deliveries.iter().find(|(d, _)| *d == n)) {
            Some((_, p)) => Some(p),
            None if self.deliveries.len() == 1 => Some(&self.deliveries[0].1),
            None => None,
        }
    }

    /// Answers one invocation with aws_lambda_events' response type. Its serialisation (which
    /// writes `metadata` on every record) stays within Lambda's 6 MB.
    pub async fn handle(&self, event: TransformationEvent) -> KinesisFirehoseResponse {
        let bytes: usize = event.records.iter().map(|r| r.data.len()).sum();
        let capacity = bytes + event.records.len() * 96;
        let json = self
            .answer(
                Style::Typed,
                capacity,
                bytes,
                event.records.len(),
                |feeder| {
                    feeder.route(|| self.route(event.delivery_stream_arn.as_deref(), true));
                    for r in &event.records {
                        feeder.push(Record {
                            id: Cow::Borrowed(&r.record_id),
                            plain_id: false,
                            data: Cow::Borrowed(&r.data),
                        });
                    }
                    Ok::<(), std::convert::Infallible>(())
                },
            )
            .await;
        let read_back = match json {
            Ok(json) => serde_json::from_str(&json.into_string()).map_err(|e| e.to_string()),
            Err(Unanswered::Lost) => Err("a worker thread died".to_owned()),
            Err(Unanswered::TooLarge(bytes)) => {
                Err(LambdaError::ResponseTooLarge { bytes }.to_string())
            }
            Err(Unanswered::Event(never)) => match never {},
        };
        match read_back {
            Ok(response) => response,
            Err(e) => {
                // Should the handler fail itself (a bug, or a response over 6 MB whatever
                // it says), every record is failed: this signature cannot fail the invocation.
                eprintln!("kpipe: {e}");
                let mut response = KinesisFirehoseResponse::default();
                response.records = event
                    .records
                    .into_iter()
                    .map(|r| {
                        let mut a = KinesisFirehoseResponseRecord::default();
                        a.record_id = Some(r.record_id);
                        a.result = Some("ProcessingFailed".to_owned());
                        a
                    })
                    .collect();
                response
            }
        }
    }

    /// Answers one invocation from the event's JSON bytes with the response's JSON text. The
    /// event is read in place (ids and data borrowed from the bytes), records are processed
    /// while it is being read, and the response is written directly, base64 included, without
    /// building it as a tree; `metadata` is written only for records with partition keys.
    ///
    /// # Errors
    /// [`LambdaError::InvalidEvent`] when the bytes are not a Firehose transformation event.
    /// Records read before the error may have been through the transform: as with any failed
    /// invocation, Firehose sends them again.
    pub async fn handle_json(&self, event: &[u8]) -> Result<String, LambdaError> {
        Ok(self.handle_json_text(event).await?.into_string())
    }

    /// [`handle_json`](Self::handle_json) without joining the response's pieces (the answers
    /// written on each thread): the path `serve` takes, posting them as one body.
    ///
    /// # Errors
    /// As [`handle_json`](Self::handle_json).
    pub async fn handle_json_text(&self, event: &[u8]) -> Result<ResponseText, LambdaError> {
        let records = event.len() / EVENT_BYTES_PER_RECORD;
        self.answer(
            Style::Raw,
            event.len() + 64,
            event.len(),
            records,
            |feeder| {
                // Ids and data are borrowed from the event (`event.rs`).
                event::read(event, |item| match item {
                    Item::Arn(arn) => feeder.route(|| self.route(arn.as_deref(), false)),
                    Item::Record(record) => feeder.push(record),
                })
            },
        )
        .await
        .map_err(|e| match e {
            Unanswered::Event(e) => LambdaError::InvalidEvent(e.to_string()),
            Unanswered::Lost => LambdaError::Internal("a worker thread died".into()),
            Unanswered::TooLarge(bytes) => LambdaError::ResponseTooLarge { bytes },
        })
    }

    /// Which processor answers an event for delivery stream `arn`. `last`: no ARN will come
    /// later in the event.
    fn route(&self, arn: Option<&str>, last: bool) -> Route {
        match (self.processor(arn), arn) {
            (Some(p), _) => Route::To(Arc::clone(p)),
            (None, None) if !last => Route::Unknown,
            (None, _) => {
                let why = format!(
                    "transform `{}` is not used by delivery stream {arn:?}",
                    self.transform
                );
                eprintln!("kpipe: {why}; failing the batch");
                Route::Nowhere(why)
            }
        }
    }

    /// Runs every record `feed` gives through the delivery's processor, on the worker threads
    /// worth it for `bytes` of event while `feed` goes on, and answers each, in order, within
    /// Lambda's response limit. `records`: about how many there are, to make room once.
    async fn answer<'a, E>(
        &self,
        style: Style,
        capacity: usize,
        bytes: usize,
        records: usize,
        feed: impl FnOnce(&mut Feeder<'a>) -> Result<(), E>,
    ) -> Result<ResponseText, Unanswered<E>> {
        // With a single delivery the processor is known before the event says which.
        let route = if self.deliveries.len() == 1 {
            Route::To(Arc::clone(&self.deliveries[0].1))
        } else {
            Route::Unknown
        };
        let workers = batch::workers(self.threads, bytes);
        let finished = if workers == 0 {
            let mut feeder = Feeder::new(style, route, capacity, records, None);
            feed(&mut feeder).map_err(Unanswered::Event)?;
            feeder.finish(None)
        } else {
            let (jobs, queue) = std::sync::mpsc::channel();
            let queue = Mutex::new(queue);
            let runtime = tokio::runtime::Handle::try_current().ok();
            std::thread::scope(|scope| {
                let pool: Vec<_> = (0..workers)
                    .map(|_| {
                        let (queue, runtime) = (&queue, runtime.clone());
                        scope.spawn(move || {
                            // A function that reaches for the Tokio runtime finds it here too.
                            let _entered = runtime.as_ref().map(|r| r.enter());
                            batch::work(queue, style)
                        })
                    })
                    .collect();
                let mut feeder = Feeder::new(style, route, capacity, records, Some(jobs));
                let fed = feed(&mut feeder);
                // Even when the event turns out bad, the queue is closed and the workers end.
                let mut finished = feeder.finish(Some(&queue));
                for worker in pool {
                    // Panics are caught per batch (`Chunk::run`); a worker that died anyway
                    // leaves a batch missing, which `respond` reports.
                    if let Ok(done) = worker.join() {
                        finished.chunks.extend(done);
                    }
                }
                fed.map(|()| finished).map_err(Unanswered::Event)
            })?
        };
        let response = match finished.too_large() {
            Some(bytes) => Err(Unanswered::TooLarge(bytes)),
            None => finished.respond(style).await.ok_or(Unanswered::Lost),
        };
        batch::end_failure_log();
        response
    }
}

/// Why an invocation gets no response.
enum Unanswered<E> {
    /// The event could not be read.
    Event(E),
    /// A worker thread died with records of the event (a bug).
    Lost,
    /// Answering every record takes more than Lambda's 6 MB, however they are answered.
    TooLarge(usize),
}

#[cfg(test)]
mod tests {
    use super::threads_from;

    #[test]
    fn the_thread_count_is_the_variable_or_what_the_memory_buys() {
        let mb = |m: &str| Some(m.to_owned());
        // Outside Lambda: the CPUs.
        assert_eq!(threads_from(None, None, 2), 2);
        // In Lambda: one thread per 1,769 MB begun, at most the CPUs seen.
        assert_eq!(threads_from(None, mb("128"), 2), 1);
        assert_eq!(threads_from(None, mb("1769"), 2), 1);
        assert_eq!(threads_from(None, mb("3008"), 2), 2);
        assert_eq!(threads_from(None, mb("10240"), 6), 6);
        assert_eq!(threads_from(None, mb("10240"), 2), 2);
        // The variable wins; a bad value falls back with a message.
        assert_eq!(threads_from(Some(" 3 ".into()), mb("128"), 2), 3);
        assert_eq!(threads_from(Some("0".into()), None, 2), 2);
        assert_eq!(threads_from(Some("many".into()), mb("4000"), 6), 3);
    }
}
