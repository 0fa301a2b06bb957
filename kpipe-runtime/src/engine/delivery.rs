//! One Firehose delivery stream, running as one task: the transform stage (batches by the
//! processor's size-or-interval hints, invocations with retries) and the S3 stage (one buffer
//! per partition, flushed on size or interval, objects named and compressed as Firehose does,
//! error documents under the error prefix).

use super::clock::Clock;
use super::compress::{Chunks, compress};
use super::jq::Query;
use super::naming::{self, Ids, PrefixContext};
use super::report::{DeliveryReport, TransformReport};
use super::stream::{Feed, SourceRecord};
use crate::firehose::{self, BatchRecord, ErrorDocument, Invoker};
use crate::pipeline::guard::CatchUnwind;
use crate::pipeline::{RecordProcessor, RecordResult};
use crate::spec::{Compression, DeliverySpec, KeySource, S3Spec, TransformSpec};
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

/// Messages (one per put call) taken from the input channel per wake-up.
const RECV_BATCH: usize = 256;

/// Active partitions per delivery stream (Amazon Data Firehose, Dynamic partitioning: <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html>).
pub const MAX_ACTIVE_PARTITIONS: usize = 500;

/// The error output types kpipe writes (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
const PROCESSING_FAILED: &str = "processing-failed";
const ACTIVE_PARTITION_EXCEEDED: &str = "activePartitionExceeded";

/// The error code of a record whose partition key values make an object key that cannot be
/// stored (kpipe's choice, see [`naming::check_key`]).
const INVALID_OBJECT_KEY: &str = "DynamicPartitioning.InvalidObjectKey";

/// Firehose's version of a delivery stream's configuration starts at 1 (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
const DELIVERY_VERSION: u32 = 1;

struct Buffer {
    data: Chunks,
    records: u64,
    oldest_ms: i64,
    deadline: Instant,
}

impl Buffer {
    fn new(oldest_ms: i64, deadline: Instant) -> Self {
        Buffer {
            data: Chunks::default(),
            records: 0,
            oldest_ms,
            deadline,
        }
    }
}

/// The first retry of a failed object write comes this soon; each next one waits twice as
/// long, up to [`MAX_RETRY_INTERVAL`].
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Firehose retries a failed S3 delivery every 5 seconds ("Handle data delivery failure",
/// <https://docs.aws.amazon.com/firehose/latest/dev/retry.html>); kpipe backs off to that.
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// One write attempt that gets no answer for this long has failed (a hanging store).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

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
    batch: Vec<BatchRecord>,
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
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                // Many records per wake-up: the producer and this task run on different threads.
                // Backpressure: no new records while the writes in flight are over budget.
                n = self.task.rx.recv_many(&mut inbox, RECV_BATCH), if self.writing_bytes <= budget => {
                    if n == 0 {
                        return;
                    }
                    // Each message's permits go back to the input budget once it is handled.
                    for (feed, _held) in inbox.drain(..) {
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
                    if self.next_deadline().is_some_and(|d| d <= Instant::now()) {
                        self.on_deadline().await;
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => self.on_deadline().await,
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
        while let Ok((feed, _)) = self.task.rx.try_recv() {
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

pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
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
        if let Some(subs) = crate::kpl::user_records(&r.data) {
            for (sub, data) in subs.into_iter().enumerate() {
                let record = SourceRecord {
                    data: data.into(),
                    subsequence: sub as u32,
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
                self.batch.push(BatchRecord {
                    // Firehose derives record ids from the source record; so does kpipe (lineage).
                    record_id: record_id(r.shard, r.sequence, r.subsequence),
                    arrival_ms: r.arrival_ms,
                    data: r.data.clone(),
                });
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
                        self.deliver_record(data, partition_keys, r.arrival_ms);
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
        self.write_error(PROCESSING_FAILED, doc, r.arrival_ms);
    }

    /// Invokes the transform with the current batch, retrying a failed invocation
    /// `retries` times (Amazon Data Firehose, Handle failure in data transformation: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>).
    async fn invoke(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.batch_deadline = None;
        if batch.is_empty() {
            return;
        }
        let Some((spec, invoker)) = self.task.transform.clone() else {
            return;
        };
        self.tr.received += batch.len() as u64;
        let mut attempts = 0u32;
        let outcome = loop {
            attempts += 1;
            self.tr.invocations += 1;
            // An invoker that panics is an invocation that failed (Lambda.FunctionError),
            // retried like any other, never the end of the delivery.
            let call = async { invoker.invoke(&batch).await };
            let result = match CatchUnwind(Box::pin(call)).await {
                Ok(Ok(response)) => {
                    firehose::validate_response(&batch, &response).map(|()| response)
                }
                Ok(Err(e)) => Err(e),
                Err(panic) => Err(firehose::InvocationError::FunctionError(format!(
                    "the invocation panicked: {panic}"
                ))),
            };
            match result {
                Ok(response) => break Ok(response),
                Err(e) => {
                    self.tr.failed_invocations += 1;
                    tracing::warn!(delivery = self.task.spec.name, attempt = attempts, error = %e, "transform invocation failed");
                    if attempts > spec.retries {
                        break Err(e);
                    }
                }
            }
        };
        let now = self.task.clock.now_ms();
        match outcome {
            Ok(response) => {
                // Results in request order (validate_response guarantees every id once).
                let in_order = response
                    .iter()
                    .zip(&batch)
                    .all(|(r, b)| r.record_id == b.record_id);
                let results: Vec<Option<RecordResult>> = if in_order {
                    response.into_iter().map(|r| Some(r.result)).collect()
                } else {
                    let mut by_id: HashMap<String, RecordResult> = response
                        .into_iter()
                        .map(|r| (r.record_id, r.result))
                        .collect();
                    batch.iter().map(|b| by_id.remove(&b.record_id)).collect()
                };
                for (rec, result) in batch.into_iter().zip(results) {
                    match result {
                        Some(RecordResult::Ok {
                            data,
                            partition_keys,
                        }) => {
                            self.tr.ok += 1;
                            self.deliver_record(data, partition_keys, rec.arrival_ms);
                        }
                        Some(RecordResult::Dropped) => {
                            self.tr.dropped += 1;
                            self.report.dropped += 1;
                        }
                        Some(RecordResult::Failed(message)) => {
                            self.fail_transform(
                                &rec,
                                attempts,
                                firehose::PROCESSING_FAILED_CODE,
                                message,
                                now,
                            );
                        }
                        // validate_response guarantees every id is answered.
                        None => self.fail_transform(
                            &rec,
                            attempts,
                            "Lambda.MissingRecordId",
                            "no result".into(),
                            now,
                        ),
                    }
                }
            }
            Err(e) => {
                for rec in &batch {
                    self.fail_transform(rec, attempts, e.code(), e.to_string(), now);
                }
            }
        }
    }

    fn fail_transform(
        &mut self,
        rec: &BatchRecord,
        attempts: u32,
        code: &str,
        message: String,
        now: i64,
    ) {
        self.tr.failed += 1;
        self.report.failed += 1;
        let doc = ErrorDocument::new(
            &rec.data,
            rec.arrival_ms,
            attempts,
            code,
            message,
            now,
            self.task.lambda_arn.clone(),
        );
        self.write_error(PROCESSING_FAILED, doc, rec.arrival_ms);
    }

    fn buffer_deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(u64::from(self.task.s3.buffer.interval_secs))
    }

    fn note_deadline(&mut self, d: Instant) {
        self.buffers_deadline = Some(self.buffers_deadline.map_or(d, |x| x.min(d)));
    }

    fn deliver_record(
        &mut self,
        data: Vec<u8>,
        lambda_keys: Vec<(&'static str, String)>,
        arrival_ms: i64,
    ) {
        self.report.destination.received += 1;
        let keys = match self.partition_keys(&data, lambda_keys) {
            Ok(keys) => keys,
            Err(reason) => {
                let code = "DynamicPartitioning.MetadataExtractionFailed";
                return self.fail_in_destination(
                    &data,
                    arrival_ms,
                    code,
                    reason,
                    PROCESSING_FAILED,
                );
            }
        };
        if !self.buffers.contains_key(&keys) {
            if !keys.is_empty()
                && let Err(reason) = self.check_partition(&keys, arrival_ms)
            {
                let code = INVALID_OBJECT_KEY;
                return self.fail_in_destination(
                    &data,
                    arrival_ms,
                    code,
                    reason,
                    PROCESSING_FAILED,
                );
            }
            if self.task.s3.dynamic_partitioning() && self.buffers.len() >= MAX_ACTIVE_PARTITIONS {
                // Records beyond the active partition limit go to the error prefix as
                // `activePartitionExceeded` (Amazon Data Firehose, Buffering:
                // https://docs.aws.amazon.com/firehose/latest/dev/buffering.html).
                let code = "DynamicPartitioning.ActivePartitionsLimitExceeded";
                let reason = format!("more than {MAX_ACTIVE_PARTITIONS} active partitions");
                return self.fail_in_destination(
                    &data,
                    arrival_ms,
                    code,
                    reason,
                    ACTIVE_PARTITION_EXCEEDED,
                );
            }
            let d = self.buffer_deadline();
            self.note_deadline(d);
            self.buffers
                .insert(keys.clone(), Buffer::new(arrival_ms, d));
        }
        let buffer = self
            .buffers
            .get_mut(&keys)
            .expect("delivery: buffer was just ensured");
        buffer.data.push(&data);
        buffer.records += 1;
        buffer.oldest_ms = buffer.oldest_ms.min(arrival_ms);
        if buffer.data.len() as u64 >= self.task.s3.buffer.size_bytes {
            let buffer = self.buffers.remove(&keys).expect("delivery: buffer exists");
            self.flush(buffer, keys, Output::Data);
        }
    }

    /// A record that reached the S3 stage but cannot be delivered: an error document (with
    /// the record as the destination got it, without kpipe's delimiter) under `error_type`.
    fn fail_in_destination(
        &mut self,
        data: &[u8],
        arrival_ms: i64,
        code: &str,
        reason: String,
        error_type: &'static str,
    ) {
        self.report.failed += 1;
        self.report.destination.failed += 1;
        let record = self.record_of(data);
        let now = self.task.clock.now_ms();
        let doc = ErrorDocument::new(record, arrival_ms, 1, code, reason, now, None);
        self.write_error(error_type, doc, arrival_ms);
    }

    /// A delivered record without the newline kpipe appends.
    fn record_of<'d>(&self, data: &'d [u8]) -> &'d [u8] {
        match data {
            [record @ .., b'\n'] if self.task.s3.newline => record,
            _ => data,
        }
    }

    /// The record's partition keys in declaration order: `partitionKeyFromQuery` keys read
    /// with jq from the record as the transform left it, `partitionKeyFromLambda` keys as the
    /// transform returned them. An empty value is refused (kpipe's choice, docs/engine.md).
    fn partition_keys(
        &self,
        data: &[u8],
        mut from_lambda: Vec<(&'static str, String)>,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let specs = self.task.s3.partition_keys;
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::with_capacity(specs.len());
        for (spec, reader) in specs.iter().zip(&self.key_readers) {
            let value = match reader {
                KeyReader::Query(Ok(query)) => query.eval(self.record_of(data))?,
                KeyReader::Query(Err(e)) => return Err(e.clone()),
                KeyReader::Lambda => {
                    let at = from_lambda.iter().position(|(k, _)| *k == spec.name);
                    let Some(at) = at else {
                        return Err(format!(
                            "the transform returned no value for partition key `{}`",
                            spec.name
                        ));
                    };
                    let (_, value) = from_lambda.swap_remove(at);
                    if value.is_empty() {
                        return Err(format!(
                            "the transform returned an empty value for partition key `{}`",
                            spec.name
                        ));
                    }
                    value
                }
            };
            keys.push((spec.name, value));
        }
        Ok(keys)
    }

    /// Whether the objects of a new partition can be stored under the key its values make
    /// (see [`naming::check_key`]): checked once per partition, on a key named as the
    /// partition's first object would be.
    fn check_partition(
        &self,
        keys: &[(&'static str, String)],
        arrival_ms: i64,
    ) -> Result<(), String> {
        let time = naming::local_time(arrival_ms, self.task.tz);
        let cx = PrefixContext {
            time: &time,
            keys,
            error_type: None,
        };
        // A throwaway sequence: random parts have a fixed length and alphabet, and the
        // delivery's own sequence must not move.
        let mut ids = Ids::Seeded(0);
        let prefix = naming::object_prefix(self.task.s3, &cx, &mut ids);
        let name = naming::object_name(
            self.task.spec.name,
            DELIVERY_VERSION,
            &time,
            &ids.uuid(),
            naming::extension(self.task.s3),
        );
        naming::check_key(&format!("{prefix}{name}"), self.task.sink.filesystem)
    }

    fn write_error(&mut self, error_type: &'static str, doc: ErrorDocument, arrival_ms: i64) {
        self.report.error_output.records += 1;
        if !self.error_buffers.contains_key(error_type) {
            let d = self.buffer_deadline();
            self.note_deadline(d);
            self.error_buffers
                .insert(error_type, Buffer::new(arrival_ms, d));
        }
        let buffer = self
            .error_buffers
            .get_mut(error_type)
            .expect("delivery: error buffer was just ensured");
        buffer.data.push(&doc.to_line());
        buffer.records += 1;
        buffer.oldest_ms = buffer.oldest_ms.min(arrival_ms);
        if buffer.data.len() as u64 >= self.task.s3.buffer.size_bytes {
            let buffer = self
                .error_buffers
                .remove(error_type)
                .expect("delivery: error buffer exists");
            self.flush(buffer, Vec::new(), Output::Error(error_type));
        }
    }

    /// Buffers a source record, as it came, for the backup (`s3_backup`), which is flushed on
    /// its own size-or-interval hints. Firehose writes source records as they are, without a
    /// delimiter.
    fn back_up(&mut self, r: &SourceRecord) {
        let Some(backup) = &self.task.backup else {
            return;
        };
        let size = backup.s3.buffer.size_bytes;
        let interval = u64::from(backup.s3.buffer.interval_secs);
        if self.backup_buffer.is_none() {
            let d = Instant::now() + Duration::from_secs(interval);
            self.note_deadline(d);
            self.backup_buffer = Some(Buffer::new(r.arrival_ms, d));
        }
        let buffer = self
            .backup_buffer
            .as_mut()
            .expect("delivery: backup buffer was just ensured");
        buffer.data.push(&r.data);
        buffer.records += 1;
        buffer.oldest_ms = buffer.oldest_ms.min(r.arrival_ms);
        if buffer.data.len() as u64 >= size {
            let buffer = self
                .backup_buffer
                .take()
                .expect("delivery: backup buffer exists");
            self.flush(buffer, Vec::new(), Output::Backup);
        }
    }

    /// Names the object and hands compression and the write to a task of their own, so the
    /// next records are processed meanwhile (the second core compresses).
    fn flush(&mut self, buffer: Buffer, keys: Vec<(&'static str, String)>, output: Output) {
        let (s3, sink) = match (&self.task.backup, output) {
            (Some(b), Output::Backup) => (b.s3, &b.sink),
            _ => (self.task.s3, &self.task.sink),
        };
        // The backup is a plain S3 destination: UTC times (it takes no time zone).
        let tz = if output == Output::Backup {
            None
        } else {
            self.task.tz
        };
        let time = naming::local_time(buffer.oldest_ms, tz);
        let error_type = match output {
            Output::Error(t) => Some(t),
            _ => None,
        };
        let cx = PrefixContext {
            time: &time,
            keys: &keys,
            error_type,
        };
        let prefix = match output {
            Output::Data | Output::Backup => naming::object_prefix(s3, &cx, &mut self.task.ids),
            Output::Error(_) => naming::error_prefix(s3, &cx, &mut self.task.ids),
        };
        // Error documents are written uncompressed, so they can be read as they are.
        let (compression, ext) = match output {
            Output::Data | Output::Backup => (s3.compression, naming::extension(s3)),
            Output::Error(_) => (Compression::None, ""),
        };
        let uuid = self.task.ids.uuid();
        let name = naming::object_name(self.task.spec.name, DELIVERY_VERSION, &time, &uuid, ext);
        let key = if sink.bucket_in_key {
            format!("{}/{prefix}{name}", s3.bucket)
        } else {
            format!("{prefix}{name}")
        };
        let store = Arc::clone(&sink.store);
        let records = buffer.records;
        let bytes_in = buffer.data.len() as u64;
        self.writing_bytes += bytes_in;
        let deadline = Instant::now() + self.task.write_deadline;
        self.writes.spawn(async move {
            let entry = name.clone();
            let packed =
                tokio::task::spawn_blocking(move || compress(buffer.data, compression, &entry))
                    .await;
            let (bytes_out, result) = match packed {
                Ok(Ok(body)) => {
                    let bytes_out = body.content_length() as u64;
                    // The key as it is, never percent-encoded (`Path::from` would encode
                    // `#`, `~` and non-ASCII, which Firehose writes as they are).
                    match StorePath::parse(&key) {
                        Ok(path) => (bytes_out, put_until(&*store, &path, body, deadline).await),
                        Err(e) => (bytes_out, Err(format!("the key cannot be stored: {e}"))),
                    }
                }
                Ok(Err(e)) => (0, Err(format!("compression failed: {e}"))),
                Err(e) => (0, Err(format!("compression task failed: {e}"))),
            };
            Written {
                key,
                records,
                bytes_in,
                bytes_out,
                output,
                result,
            }
        });
    }

    fn on_written(&mut self, done: Result<Written, tokio::task::JoinError>) {
        let w = match done {
            Ok(w) => w,
            Err(e) => {
                // The write task cannot panic (the store is called under catch_unwind); if it
                // died anyway, what it held is not known to be stored.
                let reason = format!("an object write task failed: {e}");
                self.report.errors.push(reason.clone());
                self.undelivered_reason.get_or_insert(reason);
                return;
            }
        };
        self.writing_bytes = self.writing_bytes.saturating_sub(w.bytes_in);
        match (&w.result, w.output) {
            (Ok(()), Output::Backup) => {
                if let Some(b) = &mut self.report.backup {
                    b.records += w.records;
                    b.objects += 1;
                    b.bytes_out += w.bytes_out;
                }
            }
            (Err(e), Output::Backup) => {
                // The records were delivered; their backup copy was not stored.
                let reason = format!(
                    "the backup of {} source records could not be written to {}: {e}",
                    w.records, w.key
                );
                tracing::error!("{reason}");
                if let Some(b) = &mut self.report.backup {
                    b.undelivered += w.records;
                }
                self.backup_failed.get_or_insert_with(|| reason.clone());
                self.report.errors.push(reason);
            }
            (Ok(()), Output::Data) => {
                self.report.delivered += w.records;
                self.report.destination.delivered += w.records;
                self.report.destination.objects += 1;
                self.report.destination.bytes_in += w.bytes_in;
                self.report.destination.bytes_out += w.bytes_out;
                tracing::debug!(key = %w.key, records = w.records, "object written");
                self.report.objects.push(w.key);
            }
            (Ok(()), Output::Error(_)) => {
                self.report.error_output.objects += 1;
                self.report.error_objects.push(w.key);
            }
            (Err(e), output) => {
                let error_type = match output {
                    Output::Error(t) => Some(t),
                    _ => None,
                };
                // Nothing is lost silently: the object's records are undelivered (not
                // failed: failed records have an error document), with the reason.
                let reason = match error_type {
                    None => format!(
                        "{} records could not be written to {}: {e}",
                        w.records, w.key
                    ),
                    Some(_) => format!(
                        "{} error documents could not be written to {}: {e}",
                        w.records, w.key
                    ),
                };
                tracing::error!("{reason}");
                if error_type.is_some() {
                    // They were counted as failed when their error document was made.
                    self.report.error_output.lost_in_write += w.records;
                    self.report.failed -= w.records;
                } else {
                    self.report.destination.undelivered += w.records;
                }
                self.report.undelivered += w.records;
                self.undelivered_reason
                    .get_or_insert_with(|| reason.clone());
                self.report.errors.push(reason);
            }
        }
    }

    /// A flush's answer: an error once any object this delivery made was not stored (then no
    /// checkpoint may pass what it read).
    fn flushed(&self) -> Result<(), String> {
        match (&self.undelivered_reason, &self.backup_failed) {
            (None, None) => Ok(()),
            (Some(reason), _) => Err(format!(
                "delivery {}: {} records undelivered ({reason})",
                self.task.spec.name, self.report.undelivered
            )),
            (None, Some(reason)) => Err(format!(
                "delivery {}: {} source records not backed up ({reason})",
                self.task.spec.name,
                self.report.backup.as_ref().map_or(0, |b| b.undelivered)
            )),
        }
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

/// Writes one object, retrying with backoff until it is stored or `deadline` passes: an
/// error, a panic in the store, or an attempt without an answer for [`ATTEMPT_TIMEOUT`] is
/// a failed attempt. Firehose retries S3 delivery for up to 24 hours, or for a Kinesis source
/// until the stream's retention ends ("Handle data delivery failure",
/// <https://docs.aws.amazon.com/firehose/latest/dev/retry.html>); locally the deadline is
/// [`LocalBuilder::write_deadline`](super::LocalBuilder::write_deadline).
pub(crate) async fn put_until(
    store: &dyn object_store::ObjectStore,
    path: &StorePath,
    body: object_store::PutPayload,
    deadline: Instant,
) -> Result<(), String> {
    let mut delay = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let limit = ATTEMPT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let attempt = CatchUnwind(Box::pin(store.put(path, body.clone())));
        let error = match tokio::time::timeout(limit.max(FIRST_RETRY), attempt).await {
            Ok(Ok(Ok(_))) => return Ok(()),
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(panic)) => format!("the object store panicked: {panic}"),
            Err(_) => format!("no answer from the object store within {limit:?}"),
        };
        if Instant::now() + delay > deadline {
            return Err(format!("{error} (gave up after {attempts} attempts)"));
        }
        tracing::warn!(key = %path, attempt = attempts, %error, "object write failed; retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY_INTERVAL);
    }
}

/// The invoker that runs a delivery's own record processor: the transform as the generated
/// Lambda handler runs it.
pub struct LocalInvoker {
    processor: Arc<dyn RecordProcessor>,
}

impl LocalInvoker {
    /// Runs batches through this processor (from [`DeliveryDef::processor`](crate::DeliveryDef::processor)).
    pub fn new(processor: Arc<dyn RecordProcessor>) -> Self {
        LocalInvoker { processor }
    }
}

impl std::fmt::Debug for LocalInvoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalInvoker")
    }
}

impl Invoker for LocalInvoker {
    fn invoke<'a>(&'a self, records: &'a [BatchRecord]) -> firehose::InvokeFuture<'a> {
        Box::pin(async move { Ok(firehose::invoke_batch(&*self.processor, records).await) })
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
                .map(|(i, d)| SourceRecord {
                    data: bytes::Bytes::from_static(d.as_bytes()),
                    arrival_ms: 0,
                    shard: 0,
                    sequence: i as u64 + 1,
                    subsequence: 0,
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
