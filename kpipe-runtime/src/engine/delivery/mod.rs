//! One Firehose delivery stream, running as one task. This file holds the task's state and
//! its select loop (records in, deadlines, finished writes); the two stages a record goes
//! through are in files of their own:
//!
//! - `transform.rs`: the transform stage (batches by the processor's size-or-interval hints,
//!   invocations with retries);
//! - `s3.rs`: the S3 stage (one buffer per partition, flushed on size or interval, objects
//!   named and compressed as Firehose does, error documents under the error prefix, the
//!   source record backup, writes retried until the write deadline).

use super::clock::{Alarm, Clock};
use super::compress::Chunks;
use super::jq::Query;
use super::naming::Ids;
use super::report::{DeliveryReport, TransformReport};
use super::stream::{Feed, SourceRecord};
use crate::firehose::{ErrorDocument, Invoker};
use crate::pipeline::guard::CatchUnwind;
use crate::pipeline::{RecordProcessor, RecordResult};
use crate::spec::{DeliverySpec, KeySource, S3Spec, TransformSpec};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

mod s3;
mod transform;

pub(crate) use self::s3::put_until;
pub use self::transform::LocalInvoker;

/// Messages (one per put call) taken from the input channel per wake-up.
const RECV_BATCH: usize = 256;

/// Fewer records than this in one wake-up: they came from puts of one record or a few.
const SMALL_WAKE_UP: usize = 64;

/// Active partitions per delivery stream (Amazon Data Firehose, Dynamic partitioning: <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html>).
pub const MAX_ACTIVE_PARTITIONS: usize = 500;

/// The error output types kpipe writes (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
const PROCESSING_FAILED: &str = "processing-failed";
const ACTIVE_PARTITION_EXCEEDED: &str = "activePartitionExceeded";
const FORMAT_CONVERSION_FAILED: &str = "format-conversion-failed";

/// The error code of a record whose partition key values make an object key that cannot be
/// stored (kpipe's choice, see [`naming::check_key`](super::naming::check_key)).
const INVALID_OBJECT_KEY: &str = "DynamicPartitioning.InvalidObjectKey";

/// Firehose's version of a delivery stream's configuration starts at 1 (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
const DELIVERY_VERSION: u32 = 1;

struct Buffer {
    data: Chunks,
    /// Each record's length, when the destination converts (records are parsed one by one).
    lens: Vec<u32>,
    /// Row groups handed to blocking tasks as they filled (`format: parquet`).
    groups: Vec<super::columnar::Group>,
    /// The bytes of the records in `groups`.
    handed_off: u64,
    records: u64,
    oldest_ms: i64,
    deadline: Instant,
}

impl Buffer {
    /// The bytes buffered, as the size hint counts them (JSON, before conversion).
    fn bytes(&self) -> u64 {
        self.data.len() as u64 + self.handed_off
    }

    fn new(oldest_ms: i64, deadline: Instant) -> Self {
        Buffer {
            data: Chunks::default(),
            lens: Vec::new(),
            groups: Vec::new(),
            handed_off: 0,
            records: 0,
            oldest_ms,
            deadline,
        }
    }
}

/// Object writes in flight hold at most this many bytes (before compression), or two
/// buffers' worth when the destination's buffer is larger: beyond it the delivery stops
/// taking records until writes finish, so a slow or hanging store slows producers down
/// instead of growing memory.
pub(crate) const MIN_WRITE_BUDGET: u64 = 64 * 1024 * 1024;

/// How long a delivery keeps retrying one object write by default
/// ([`LocalBuilder::write_deadline`](super::LocalBuilder::write_deadline)).
pub const DEFAULT_WRITE_DEADLINE: Duration = Duration::from_secs(60);

/// Which of a delivery's outputs an object belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// The destination's objects.
    Data,
    /// Error documents of this error output type, under the error prefix.
    Error(&'static str),
    /// The source record backup (`s3_backup`).
    Backup,
}

/// What a spawned object write reports back.
struct Written {
    key: String,
    records: u64,
    bytes_in: u64,
    bytes_out: u64,
    output: Output,
    result: Result<(), String>,
    /// Records of a converting destination that did not convert (`format-conversion-failed`).
    unconverted: Vec<(Vec<u8>, String)>,
    /// When the object's oldest record arrived (for their error documents).
    oldest_ms: i64,
}

/// A delivery's source record backup: the s3 destination it writes to and where.
pub(crate) struct Backup {
    pub(crate) s3: &'static S3Spec,
    pub(crate) sink: super::Sink,
}

pub(crate) struct DeliveryTask {
    pub(crate) spec: &'static DeliverySpec,
    pub(crate) s3: &'static S3Spec,
    pub(crate) transform: Option<(&'static TransformSpec, Arc<dyn Invoker>)>,
    pub(crate) processor: Arc<dyn RecordProcessor>,
    pub(crate) lambda_arn: Option<String>,
    pub(crate) rx: super::inbox::InboxRx,
    pub(crate) clock: Clock,
    pub(crate) sink: super::Sink,
    /// `s3_backup`: where the source records go as they were before the transform.
    pub(crate) backup: Option<Backup>,
    /// `format: parquet`: the converter, and the Glue table error documents name.
    pub(crate) conversion: Option<(
        Arc<super::columnar::Converter>,
        crate::firehose::DataCatalogTable,
    )>,
    pub(crate) ids: Ids,
    pub(crate) tz: Option<chrono_tz::Tz>,
    pub(crate) progress: Arc<AtomicU64>,
    /// How long one object write is retried before its records count as undelivered.
    pub(crate) write_deadline: Duration,
    /// Set (with the reason) if this delivery stops on a bug; shared with the engine.
    pub(crate) failure: super::Failure,
}

/// How one dynamic partitioning key is read.
enum KeyReader {
    /// Firehose's inline parsing; the error if the query does not compile.
    Query(Result<Query, String>),
    /// From the transform's response.
    Lambda,
}

struct State {
    task: DeliveryTask,
    /// One per key of the destination, in declaration order.
    key_readers: Vec<KeyReader>,
    report: DeliveryReport,
    tr: TransformReport,
    /// The records waiting for the transform's next invocation.
    batch: Vec<SourceRecord>,
    batch_bytes: usize,
    batch_deadline: Option<Instant>,
    buffers: HashMap<Vec<(&'static str, String)>, Buffer>,
    error_buffers: HashMap<&'static str, Buffer>,
    /// The source records not yet written to the backup.
    backup_buffer: Option<Buffer>,
    buffers_deadline: Option<Instant>,
    writes: JoinSet<Written>,
    /// Bytes (before compression) held by the writes in flight.
    writing_bytes: u64,
    /// The first reason an object was not stored, once one was not.
    undelivered_reason: Option<String>,
    /// The first reason a backup object was not stored, once one was not.
    backup_failed: Option<String>,
    /// Records of the message being handled that are not started yet (if the delivery
    /// stops on a bug, they are undelivered).
    unstarted: u64,
}

impl DeliveryTask {
    pub(crate) async fn run(self) -> DeliveryReport {
        let report = DeliveryReport {
            name: self.spec.name.to_owned(),
            bucket: self.s3.bucket.to_owned(),
            backup: self.backup.as_ref().map(|b| super::report::BackupReport {
                bucket: b.s3.bucket.to_owned(),
                ..Default::default()
            }),
            ..DeliveryReport::default()
        };
        let key_readers = self
            .s3
            .partition_keys
            .iter()
            .map(|k| match k.source {
                KeySource::Query(q) => KeyReader::Query(Query::compile(q)),
                KeySource::Lambda => KeyReader::Lambda,
            })
            .collect();
        let mut st = State {
            task: self,
            key_readers,
            report,
            tr: TransformReport::default(),
            batch: Vec::new(),
            batch_bytes: 0,
            batch_deadline: None,
            buffers: HashMap::new(),
            error_buffers: HashMap::new(),
            backup_buffer: None,
            buffers_deadline: None,
            writes: JoinSet::new(),
            writing_bytes: 0,
            undelivered_reason: None,
            backup_failed: None,
            unstarted: 0,
        };
        // A panic here is a bug in kpipe (user code runs under catch_unwind record by
        // record): the delivery stops, says so, and accounts for what it held.
        match CatchUnwind(Box::pin(st.serve())).await {
            Ok(()) => st.drain().await,
            Err(panic) => st.stopped(panic).await,
        }
    }
}

impl State {
    /// Takes records until the input closes.
    async fn serve(&mut self) {
        let budget = MIN_WRITE_BUDGET.max(2 * self.task.s3.buffer.size_bytes);
        let mut inbox = Vec::with_capacity(RECV_BATCH);
        let mut alarm = Alarm::new();
        loop {
            let deadline = alarm.set(self.next_deadline());
            tokio::select! {
                // Many records per wake-up: the producer and this task run on different threads.
                // Backpressure: no new records while the writes in flight are over budget.
                (n, done) = self.task.rx.recv_many(&mut inbox, RECV_BATCH), if self.writing_bytes <= budget => {
                    if n == 0 {
                        return;
                    }
                    // A few records only: a producer putting them one by one (see below).
                    let small = inbox.iter().map(|feed| match feed {
                        Feed::Records(records) => records.len(),
                        _ => SMALL_WAKE_UP,
                    }).sum::<usize>() < SMALL_WAKE_UP;
                    // The messages' permits go back to the input budget once they are handled,
                    // all at once (one lock of the budget, not one per message).
                    for feed in inbox.drain(..) {
                        match feed {
                            Feed::Records(records) => {
                                self.unstarted = records.len() as u64;
                                for r in records {
                                    self.unstarted -= 1;
                                    self.on_record(r).await;
                                }
                            }
                            Feed::Rejected(rejected) => {
                                for r in rejected.iter() {
                                    self.on_rejected(r);
                                }
                            }
                            Feed::Flush(ack) => {
                                self.flush_all().await;
                                let _ = ack.send(self.flushed());
                            }
                        }
                    }
                    drop(done);
                    if self.next_deadline().is_some_and(|d| d <= Instant::now()) {
                        self.on_deadline().await;
                    }
                    // A producer putting one record at a time sends a message every microsecond
                    // or so: one turn at the back of the runtime's queue before waiting (parking
                    // the thread) often finds the next one, and saves the wake-up a message to
                    // a parked task costs (futex, context switch): a quarter off the time of
                    // a PutRecord loop.
                    if small {
                        tokio::task::yield_now().await;
                    }
                }
                () = alarm.rung(), if deadline => self.on_deadline().await,
                Some(done) = self.writes.join_next(), if !self.writes.is_empty() => self.on_written(done),
            }
        }
    }

    /// The delivery panicked (a bug in kpipe): the engine is told, so puts, flushes and
    /// shutdown say so; writes already handed to the store finish; everything else it held or
    /// is still sent counts as undelivered, and the report says why.
    async fn stopped(mut self, panic: String) -> DeliveryReport {
        let message = format!(
            "delivery {} stopped: kpipe panicked: {panic}; this is a bug, please report it",
            self.task.spec.name
        );
        tracing::error!("{message}");
        let _ = self.task.failure.set(message.clone());
        self.task.rx.close();
        while let Some(done) = self.writes.join_next().await {
            self.on_written(done);
        }
        // Error documents still buffered are lost with the task: not failed, undelivered.
        let unwritten: u64 = self.error_buffers.values().map(|b| b.records).sum();
        self.report.failed = self.report.failed.saturating_sub(unwritten);
        if let (Some(b), Some(report)) = (self.backup_buffer.take(), &mut self.report.backup) {
            report.undelivered += b.records;
        }
        self.report.received += self.unstarted;
        while let Some((feed, _)) = self.task.rx.try_recv() {
            match feed {
                Feed::Records(records) => self.report.received += records.len() as u64,
                Feed::Rejected(rejected) => self.report.received += rejected.len() as u64,
                Feed::Flush(ack) => {
                    let _ = ack.send(Err(message.clone()));
                }
            }
        }
        let r = &mut self.report;
        let accounted = r.delivered + r.dropped + r.failed + r.undelivered;
        r.undelivered += r.received.saturating_sub(accounted);
        r.errors.push(message);
        self.finish()
    }
}

/// A record id from the source record's shard and position in it (lineage): unique within a
/// delivery, opaque like Firehose's.
fn record_id(shard: u32, sequence: u64, subsequence: u32) -> String {
    let mut b = itoa::Buffer::new();
    let mut id = String::with_capacity(24);
    id.push_str(b.format(shard));
    id.push('-');
    id.push_str(b.format(sequence));
    if subsequence > 0 {
        id.push('.');
        id.push_str(b.format(subsequence));
    }
    id
}

impl State {
    fn next_deadline(&self) -> Option<Instant> {
        match (self.batch_deadline, self.buffers_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn on_record(&mut self, r: SourceRecord) {
        // Firehose de-aggregates KPL records before the transform (Firehose API, CreateDeliveryStream: https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html; KPL aggregation format: https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md).
        if r.aggregate
            && let Some(subs) = crate::kpl::user_records(&r.data)
        {
            for (sub, data) in subs.into_iter().enumerate() {
                let record = SourceRecord {
                    data: data.into(),
                    subsequence: sub as u32,
                    aggregate: false,
                    ..r.clone()
                };
                Box::pin(self.on_user_record(record)).await;
            }
            return;
        }
        self.on_user_record(r).await;
    }

    async fn on_user_record(&mut self, r: SourceRecord) {
        self.task.progress.fetch_add(1, Ordering::Relaxed);
        self.report.received += 1;
        self.back_up(&r);
        match &self.task.transform {
            Some((spec, _)) => {
                if self.batch.is_empty() {
                    // The interval counts from the first record's arrival, not from when this
                    // task got to read it.
                    let arrived = self.task.clock.instant_of(r.arrival_ms);
                    self.batch_deadline =
                        Some(arrived + Duration::from_secs(u64::from(spec.buffer.interval_secs)));
                }
                self.batch_bytes += r.data.len();
                self.batch.push(r);
                if self.batch_bytes as u64 >= spec.buffer.size_bytes {
                    self.invoke().await;
                }
            }
            None => {
                let result = self.task.processor.process(&r.data).result().await;
                match result {
                    RecordResult::Ok {
                        data,
                        partition_keys,
                    } => {
                        self.deliver_record(&data, partition_keys, r.arrival_ms);
                    }
                    RecordResult::Dropped => self.report.dropped += 1,
                    RecordResult::Failed(message) => {
                        // Without a transform the bytes pass through; a failure here is a
                        // processor's own error, reported with the record.
                        self.report.destination.received += 1;
                        let code = "DynamicPartitioning.MetadataExtractionFailed";
                        self.fail_in_destination(
                            &r.data,
                            r.arrival_ms,
                            code,
                            message,
                            PROCESSING_FAILED,
                        );
                    }
                }
            }
        }
    }

    /// A source record the stream refused: an error document with the reason (its shard and
    /// sequence number), so one bad record never stops the delivery.
    fn on_rejected(&mut self, r: &super::stream::Rejected) {
        self.task.progress.fetch_add(1, Ordering::Relaxed);
        self.report.received += 1;
        self.report.failed += 1;
        let doc = ErrorDocument::new(
            &r.data,
            r.arrival_ms,
            1,
            r.code,
            r.reason.clone(),
            self.task.clock.now_ms(),
            None,
        );
        self.write_error(PROCESSING_FAILED, doc.to_line(), r.arrival_ms);
    }

    async fn on_deadline(&mut self) {
        let now = Instant::now();
        if self.batch_deadline.is_some_and(|d| d <= now) {
            self.invoke().await;
        }
        if self.buffers_deadline.is_some_and(|d| d <= now) {
            let mut due: Vec<_> = self
                .buffers
                .iter()
                .filter(|(_, b)| b.deadline <= now)
                .map(|(k, _)| k.clone())
                .collect();
            // Sorted, so seeded names do not depend on hash-map order.
            due.sort();
            for k in due {
                let b = self
                    .buffers
                    .remove(&k)
                    .expect("delivery: due buffer exists");
                self.flush(b, k, Output::Data);
            }
            if self
                .backup_buffer
                .as_ref()
                .is_some_and(|b| b.deadline <= now)
            {
                let b = self
                    .backup_buffer
                    .take()
                    .expect("delivery: due backup exists");
                self.flush(b, Vec::new(), Output::Backup);
            }
            let mut due: Vec<_> = self
                .error_buffers
                .iter()
                .filter(|(_, b)| b.deadline <= now)
                .map(|(k, _)| *k)
                .collect();
            due.sort_unstable();
            for k in due {
                let b = self
                    .error_buffers
                    .remove(k)
                    .expect("delivery: due buffer exists");
                self.flush(b, Vec::new(), Output::Error(k));
            }
            self.buffers_deadline = self
                .buffers
                .values()
                .chain(self.error_buffers.values())
                .chain(self.backup_buffer.as_ref())
                .map(|b| b.deadline)
                .min();
        }
    }

    /// The pending batch invoked, every buffer flushed, every write awaited: everything
    /// received so far is delivered.
    async fn flush_all(&mut self) {
        self.invoke().await;
        let mut buffers: Vec<_> = std::mem::take(&mut self.buffers).into_iter().collect();
        buffers.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, b) in buffers {
            self.flush(b, k, Output::Data);
        }
        if let Some(b) = self.backup_buffer.take() {
            self.flush(b, Vec::new(), Output::Backup);
        }
        // Twice: converting the last objects can make `format-conversion-failed` documents,
        // whose own writes make nothing more.
        for _ in 0..2 {
            let mut errors: Vec<_> = std::mem::take(&mut self.error_buffers)
                .into_iter()
                .collect();
            errors.sort_by_key(|e| e.0);
            for (k, b) in errors {
                self.flush(b, Vec::new(), Output::Error(k));
            }
            self.buffers_deadline = None;
            while let Some(done) = self.writes.join_next().await {
                self.on_written(done);
            }
        }
    }

    /// Shutdown: everything delivered, then the report.
    async fn drain(mut self) -> DeliveryReport {
        self.flush_all().await;
        self.finish()
    }

    /// The report, in a stable order.
    fn finish(self) -> DeliveryReport {
        let mut report = self.report;
        if self.task.transform.is_some() {
            report.transform = Some(self.tr);
        }
        report.objects.sort();
        report.error_objects.sort();
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Appended;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    struct Event {
        id: String,
    }

    crate::pipeline! {
        pipeline Buggy {
            stream events: Event { capacity: provisioned(shards: 1), partition_key: id }
            s3 lake: Event { bucket: "buggy" }
            delivery to_lake: events -> lake;
        }
    }

    /// A record path with a bug: it panics on the record `bug` (user code cannot do this any
    /// more: it runs under catch_unwind inside the generated processor).
    struct PanicsOnBug;

    impl RecordProcessor for PanicsOnBug {
        fn process_into(&self, data: &[u8], out: &mut Vec<u8>) -> Appended {
            assert!(data != b"bug", "a bug in kpipe");
            out.extend_from_slice(data);
            out.push(b'\n');
            Appended::Ok(Vec::new())
        }
    }

    fn records(data: &[&'static str]) -> Feed {
        Feed::Records(
            data.iter()
                .enumerate()
                .map(|(i, d)| {
                    SourceRecord::new(bytes::Bytes::from_static(d.as_bytes()), 0, 0, i as u64 + 1)
                })
                .collect(),
        )
    }

    async fn flush(tx: &super::super::inbox::Inbox) -> Result<(), String> {
        let (ack, done) = tokio::sync::oneshot::channel();
        if tx.send(Feed::Flush(ack)).await.is_err() {
            return Err("closed".into());
        }
        done.await.unwrap_or_else(|_| Err("dropped".into()))
    }

    #[tokio::test(start_paused = true)]
    async fn a_delivery_that_panics_says_so_and_accounts_for_what_it_held() {
        let failure = super::super::Failure::default();
        let store = Arc::new(object_store::memory::InMemory::new());
        let (tx, rx) = super::super::inbox::inbox();
        let spec = <Buggy as crate::Pipeline>::SPEC;
        let task = DeliveryTask {
            spec: &spec.deliveries[0],
            s3: &spec.destinations[0],
            transform: None,
            processor: Arc::new(PanicsOnBug),
            lambda_arn: None,
            rx,
            clock: Clock::starting_at(0),
            sink: super::super::Sink {
                store: store.clone(),
                bucket_in_key: true,
                filesystem: false,
            },
            backup: None,
            conversion: None,
            ids: Ids::Seeded(1),
            tz: None,
            progress: Arc::new(AtomicU64::new(0)),
            write_deadline: DEFAULT_WRITE_DEADLINE,
            failure: Arc::clone(&failure),
        };
        let handle = tokio::spawn(task.run());
        tx.send(records(&["a", "b"])).await.ok().unwrap();
        assert_eq!(flush(&tx).await, Ok(()));
        tx.send(records(&["c", "bug", "d"])).await.ok().unwrap();
        // Later input is refused or counted as undelivered, and a flush fails with the reason.
        let _ = tx.send(records(&["e"])).await;
        let flushed = flush(&tx).await;
        assert!(flushed.is_err(), "{flushed:?}");
        drop(tx);
        let report = handle.await.expect("the task ends with a report");
        let why = failure.get().expect("the engine is told");
        assert!(why.contains("kpipe panicked: a bug in kpipe (at "), "{why}");
        assert_eq!(report.delivered, 2);
        assert!(report.undelivered >= 3, "{report:?}");
        assert!(report.is_conserved(), "{report:?}");
        assert!(report.errors.iter().any(|e| e == why));
    }
}
