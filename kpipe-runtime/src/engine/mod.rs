//! The local engine: a declared pipeline running in-process with Firehose's observable
//! behaviour, no AWS account needed.
//!
//! ```
//! use kpipe_runtime::Outcome;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub struct Reading { sensor_id: String, celsius: f64 }
//!
//! kpipe_runtime::pipeline! {
//!     pipeline Telemetry {
//!         stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
//!         s3 lake: Reading { bucket: "acme-lake", compression: gzip }
//!         delivery to_lake: readings -> lake;
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = std::sync::Arc::new(object_store::memory::InMemory::new());
//! let engine = Telemetry::local().store(store).start()?;
//! let readings = engine.producer(Telemetry::readings())?;
//! readings.put(&Reading { sensor_id: "s-1".into(), celsius: 21.5 }).await??;
//! let report = engine.shutdown().await?; // drains every buffer
//! assert_eq!(report.deliveries[0].delivered, 1);
//! assert!(report.deliveries[0].objects[0].starts_with("acme-lake/"));
//! println!("{report}");
//! # Ok(()) }
//! ```
//!
//! - **Streams** route records by the MD5 of their partition key over equal hash-key ranges,
//!   keep each shard in order with increasing sequence numbers, check the record-size and
//!   PutRecords limits, and (optionally) the per-shard write limits.
//! - **Transforms** get batches formed by the processor's size-or-interval hints; each record
//!   carries a record id; an invocation that fails or answers with missing or repeated ids is
//!   retried, then its records become `processing-failed` error documents.
//! - **S3 destinations** keep one buffer per partition (at most 500), flush on size (measured
//!   before compression) or interval, name objects as Firehose does and compress them; objects go
//!   through `object_store` (a local directory with one folder per bucket, or any store).
//! - **Time** runs on tokio's clock: tests pause it and advance it, never sleep.
//! - **Shutdown** drains every buffer; the [`RunReport`] accounts for every record.

mod builder;
mod clock;
mod columnar;
mod compress;
mod consumer;
mod delivery;
mod inbox;
pub mod input;
mod jq;
mod naming;
mod on_failure;
mod parallel;
mod report;
mod shard;
mod staging;
pub(crate) mod stream;

pub use self::builder::LocalBuilder;
pub use self::clock::Clock;
pub use self::compress::decompress;
pub use self::delivery::{DEFAULT_WRITE_DEADLINE, LocalInvoker, MAX_ACTIVE_PARTITIONS};
pub use self::report::{
    BackupReport, ConsumerReport, DeliveryReport, DestinationReport, ErrorOutputReport, RunReport,
    StreamReport, TransformReport,
};
pub use self::stream::{
    EntryError, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, Producer, PutError, PutRecordOutput,
    PutRecordsOutput, SHARD_BYTES_PER_SEC, SHARD_RECORDS_PER_SEC,
};
/// The object_store crate the engine writes through, re-exported so tests can use the same
/// version (`kpipe_runtime::engine::object_store::memory::InMemory`).
pub use ::object_store;

use self::stream::{Feed, LocalStream, SourceRecord};
use crate::pipeline::{DeliveryDef, Pipeline, StreamDef};
use bytes::Bytes;
use object_store::ObjectStore;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::JoinHandle;

/// A Direct PUT record is at most 1,000 KiB (Firehose API, PutRecordBatch: <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>).
pub const MAX_DIRECT_PUT_BYTES: usize = 1000 * 1024;

/// Why the engine could not start or finish.
#[derive(Debug)]
#[non_exhaustive]
pub enum EngineError {
    /// The local directory could not be created or opened.
    Store(String),
    /// A destination's `time_zone` is not an IANA time zone name.
    InvalidTimeZone {
        /// The destination.
        destination: &'static str,
        /// The name as declared.
        time_zone: &'static str,
    },
    /// The stage handle does not belong to this pipeline.
    UnknownStage(String),
    /// A delivery task failed (a bug: it never panics on records).
    TaskFailed(String),
    /// A delivery stopped on a bug in kpipe: the reason, and the report of the run (what was
    /// delivered, and the rest counted as undelivered).
    Stopped {
        /// Why it stopped.
        message: String,
        /// What the run did.
        report: Box<RunReport>,
    },
    /// Records were neither delivered nor written to an error document: the store did not
    /// acknowledge their object before the write deadline. Nothing read after them may be
    /// checkpointed.
    Undelivered(String),
    /// `start` was called outside a tokio runtime.
    NoRuntime,
    /// The spec names a stage it does not declare (a spec not written by `pipeline!`).
    InvalidSpec(String),
    /// A consumer's `filter_criteria` pattern cannot be matched (a spec not written by the
    /// `pipeline!` macro, which checks them).
    InvalidFilter {
        /// The consumer.
        consumer: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A `format: parquet` destination cannot convert: its record type has no Glue columns
    /// (the field is named), or its format is not written locally.
    Conversion(String),
}

impl std::fmt::Display for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EngineError::Store(m) => write!(f, "cannot open the local store: {m}"),
            EngineError::InvalidTimeZone {
                destination,
                time_zone,
            } => write!(
                f,
                "s3 destination `{destination}`: `{time_zone}` is not an IANA time zone"
            ),
            EngineError::UnknownStage(s) => write!(f, "{s} is not a stage of this pipeline"),
            EngineError::TaskFailed(m) => write!(f, "a delivery task failed: {m}"),
            EngineError::Undelivered(m) => write!(f, "records not delivered: {m}"),
            EngineError::Stopped { message, report } => {
                write!(f, "{message}; {} records undelivered", report.undelivered())
            }
            EngineError::NoRuntime => {
                f.write_str("the local engine must be started inside a tokio runtime")
            }
            EngineError::InvalidSpec(m) => write!(f, "invalid pipeline spec: {m}"),
            EngineError::InvalidFilter { consumer, message } => {
                write!(f, "consumer `{consumer}`: {message}")
            }
            EngineError::Conversion(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for EngineError {}

/// Set, with the reason, when a delivery stops on a bug: puts, flushes and shutdown then say
/// so instead of "closed".
pub(crate) type Failure = Arc<std::sync::OnceLock<String>>;

/// The error of a put whose reader is gone.
pub(crate) fn put_error(failure: &Failure) -> PutError {
    match failure.get() {
        Some(m) => PutError::Stopped(m.clone()),
        None => PutError::Closed,
    }
}

/// Where a delivery writes: one store for all buckets (keys `<bucket>/<key>`), or the
/// bucket's own store (keys as in the bucket).
#[derive(Clone)]
pub(crate) struct Sink {
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) bucket_in_key: bool,
    /// Whether the store is the local file system (which holds shorter names than S3).
    pub(crate) filesystem: bool,
}

/// The input of a Direct PUT delivery.
#[derive(Clone)]
struct DirectInput {
    tx: Arc<std::sync::RwLock<Option<inbox::Inbox>>>,
    counter: Arc<AtomicU64>,
    clock: Clock,
    failure: Failure,
}

impl DirectInput {
    fn new(tx: inbox::Inbox, clock: Clock, failure: Failure) -> Self {
        DirectInput {
            tx: Arc::new(std::sync::RwLock::new(Some(tx))),
            counter: Arc::new(AtomicU64::new(0)),
            clock,
            failure,
        }
    }
}

/// Puts records directly into a Direct PUT delivery stream (`delivery d: direct -> ...`).
#[derive(Clone)]
pub struct DirectProducer {
    input: DirectInput,
}

impl std::fmt::Debug for DirectProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectProducer")
    }
}

impl DirectProducer {
    /// Puts one record's bytes (PutRecord).
    ///
    /// # Errors
    /// [`PutError::DirectRecordTooLarge`] over 1,000 KiB (Firehose API, PutRecordBatch: <https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html>); [`PutError::Closed`]
    /// after shutdown.
    pub async fn put_bytes(&self, data: impl Into<Bytes>) -> Result<(), PutError> {
        let data = data.into();
        if data.len() > MAX_DIRECT_PUT_BYTES {
            return Err(PutError::DirectRecordTooLarge {
                bytes: data.len(),
                limit: MAX_DIRECT_PUT_BYTES,
            });
        }
        let tx = self
            .input
            .tx
            .read()
            .expect("engine: direct lock")
            .clone()
            .ok_or(PutError::Closed)?;
        let sequence = self.input.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let record = SourceRecord::new(data, self.input.clock.now_ms(), 0, sequence);
        tx.send(Feed::Records(smallvec::smallvec![record]))
            .await
            .map_err(|_| put_error(&self.input.failure))
    }

    /// Puts one record as JSON.
    ///
    /// # Errors
    /// As [`DirectProducer::put_bytes`], and [`PutError::Encode`].
    pub async fn put<T: serde::Serialize>(&self, record: &T) -> Result<(), PutError> {
        let data = serde_json::to_vec(record).map_err(|e| PutError::Encode(e.to_string()))?;
        self.put_bytes(data).await
    }
}

/// A running local engine; from [`LocalBuilder::start`].
pub struct LocalEngine<P> {
    streams: HashMap<&'static str, Arc<LocalStream>>,
    directs: HashMap<&'static str, DirectInput>,
    tasks: Vec<JoinHandle<DeliveryReport>>,
    consumers: Vec<JoinHandle<ConsumerReport>>,
    clock: Clock,
    started: tokio::time::Instant,
    progress: Option<(indicatif::ProgressBar, JoinHandle<()>)>,
    failure: Failure,
    /// Set by [`LocalEngine::shutdown`]; a drop without it warns (see `Drop`).
    shut_down: bool,
    _pipeline: PhantomData<P>,
}

/// Dropping an engine without [`LocalEngine::shutdown`] closes its inputs, so each delivery
/// drains and writes what it holds in the background, but only while the Tokio runtime keeps
/// running, and nothing reports what was delivered. Since that silently loses records when the
/// runtime ends first (the end of `main` or of a test), the drop says so: a `tracing` warning
/// when a subscriber listens, on stderr otherwise, with the number of records put.
impl<P> Drop for LocalEngine<P> {
    fn drop(&mut self) {
        if self.shut_down {
            return;
        }
        self.close_inputs();
        if let Some((bar, handle)) = self.progress.take() {
            handle.abort();
            bar.finish_and_clear();
        }
        let put: u64 = self
            .streams
            .values()
            .map(|s| s.records.load(Ordering::Relaxed))
            .chain(
                self.directs
                    .values()
                    .map(|d| d.counter.load(Ordering::Relaxed)),
            )
            .sum();
        if put == 0 {
            return;
        }
        let message = format!(
            "kpipe: a LocalEngine was dropped without `shutdown().await` after {put} records \
             were put; its deliveries write what they hold only while the Tokio runtime keeps \
             running, and nothing reports it. Call `engine.shutdown().await` to deliver \
             everything and get the report (docs/engine.md)"
        );
        if tracing::enabled!(tracing::Level::WARN) {
            tracing::warn!("{message}");
        } else {
            eprintln!("{message}");
        }
    }
}

impl<P> LocalEngine<P> {
    /// Stops taking records: producers get [`PutError::Closed`], and every delivery and
    /// consumer drains what it holds.
    fn close_inputs(&self) {
        for s in self.streams.values() {
            s.close();
        }
        for d in self.directs.values() {
            if let Some(tx) = d.tx.write().expect("engine: direct lock").take() {
                tx.close();
            }
        }
    }
}

impl<P> std::fmt::Debug for LocalEngine<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEngine")
            .field("deliveries", &self.tasks.len())
            .finish()
    }
}

impl<P: Pipeline> LocalEngine<P> {
    /// A typed producer for one of the pipeline's streams: `engine.producer(Telemetry::readings())`.
    ///
    /// # Errors
    /// [`EngineError::UnknownStage`] for a stream of another pipeline.
    pub fn producer<T>(&self, stream: StreamDef<T>) -> Result<Producer<T>, EngineError> {
        Ok(Producer {
            stream: self.stream_state(stream.spec())?,
            def: stream,
        })
    }

    pub(crate) fn stream_state(
        &self,
        spec: &'static crate::spec::StreamSpec,
    ) -> Result<Arc<LocalStream>, EngineError> {
        self.streams
            .get(spec.id)
            .filter(|s| s.spec == spec)
            .cloned()
            .ok_or_else(|| EngineError::UnknownStage(format!("stream `{}`", spec.id)))
    }

    /// A producer for a Direct PUT delivery: `engine.direct(Telemetry::ingest())`.
    ///
    /// # Errors
    /// [`EngineError::UnknownStage`] when the delivery is not a Direct PUT delivery of this
    /// pipeline.
    pub fn direct(&self, delivery: DeliveryDef) -> Result<DirectProducer, EngineError> {
        self.directs
            .get(delivery.spec().id)
            .map(|input| DirectProducer {
                input: input.clone(),
            })
            .ok_or_else(|| {
                EngineError::UnknownStage(format!("direct delivery `{}`", delivery.spec().id))
            })
    }

    /// The engine's clock (ms since the Unix epoch).
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Delivers everything put so far, without stopping: every delivery invokes its pending
    /// transform batch, writes every buffer (whatever its size and age) and waits for the
    /// writes; every local consumer consumes what it has queued. Records put while this runs
    /// may or may not be included. A consumer shard blocked by a failing record (unlimited
    /// retries) holds this up until the record goes through.
    ///
    /// What a reader of a real stream calls before saving checkpoints
    /// (the Kinesis reader, module `kinesis` with feature `aws`, does, periodically).
    ///
    /// # Errors
    /// [`EngineError::Undelivered`] once any object of a delivery was not stored before the
    /// write deadline ([`LocalBuilder::write_deadline`]), in this flush or earlier: records
    /// are missing from the output, so no checkpoint may be saved.
    pub async fn flush(&self) -> Result<(), EngineError> {
        let mut result = Ok(());
        for spec in P::SPEC.streams {
            result = result.and(self.streams[spec.id].flush().await);
        }
        for direct in self.directs.values() {
            let tx = direct.tx.read().expect("engine: direct lock").clone();
            result = result.and(stream::flushed(stream::send_flush(tx.iter()).await).await);
        }
        result.map_err(|e| match self.failure.get() {
            Some(m) => EngineError::Undelivered(m.clone()),
            None => EngineError::Undelivered(e),
        })
    }

    /// Stops accepting records, drains every buffer (the last transform batch is invoked and
    /// every partition flushed), waits for every object write, and reports.
    ///
    /// # Errors
    /// [`EngineError::Stopped`] (with the report) if a delivery stopped on a bug;
    /// [`EngineError::TaskFailed`] if a task died without a report.
    pub async fn shutdown(mut self) -> Result<RunReport, EngineError> {
        self.shut_down = true;
        self.close_inputs();
        let mut deliveries = Vec::new();
        for t in std::mem::take(&mut self.tasks) {
            deliveries.push(
                t.await
                    .map_err(|e| EngineError::TaskFailed(e.to_string()))?,
            );
        }
        let mut consumers = Vec::new();
        for c in std::mem::take(&mut self.consumers) {
            consumers.push(
                c.await
                    .map_err(|e| EngineError::TaskFailed(e.to_string()))?,
            );
        }
        if let Some((bar, handle)) = self.progress.take() {
            handle.abort();
            bar.finish_and_clear();
        }
        let streams: Vec<StreamReport> = P::SPEC
            .streams
            .iter()
            .map(|spec| {
                let s = &self.streams[spec.id];
                StreamReport {
                    name: spec.name.to_owned(),
                    records: s.records.load(Ordering::Relaxed),
                    bytes: s.bytes.load(Ordering::Relaxed),
                    throttled: s.throttled.load(Ordering::Relaxed),
                    per_shard: s
                        .per_shard
                        .iter()
                        .map(|c| c.load(Ordering::Relaxed))
                        .collect(),
                }
            })
            .collect();
        let report = RunReport {
            streams,
            deliveries,
            consumers,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        };
        match self.failure.get() {
            Some(message) => Err(EngineError::Stopped {
                message: message.clone(),
                report: Box::new(report),
            }),
            None => Ok(report),
        }
    }
}
