//! A consumer in the local engine: what Lambda's event source mapping does with a stream's
//! records, per shard and in order.
//!
//! - Records are taken per shard in batches of at most `batch_size`, in sequence order.
//! - A batch is consumed record by record; at the first failure the records before it are
//!   done (the partial batch response checkpoints there) and the batch is retried from the
//!   failed record. With `bisect_on_error` the failing batch is halved until the bad record
//!   is alone; splitting does not count toward the retry quota, as in AWS.
//! - After `maximum_retries` retries the batch being retried (with bisection, the bad record
//!   alone) is discarded (AWS discards it, or sends it to an on-failure destination); those
//!   records are counted as `discarded`.
//! - With unlimited retries a record that keeps failing blocks its shard, as in AWS until it
//!   expires: the engine retries with a growing backoff on its clock until shutdown, and
//!   reports what is still waiting as `blocked`.
//! - With `maximum_record_age`, a record older than that (by its arrival time, on the
//!   engine's clock) when its batch is about to be handed to the function is discarded
//!   instead, and counted in `discarded` and `expired`: the end of a blocked shard, as in AWS
//!   ("Lambda parameters for Kinesis event source mappings",
//!   <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html>).
//!
//! - With `starting_position: at_timestamp(..)`, records that arrived before that instant are
//!   not read (counted in `before_start`, not in `received`).
//! - With `filter_criteria`, a record that matches none of the patterns is never handed to the
//!   function and is done with (counted in `filtered`), as Lambda event filtering does
//!   ("Using event filtering with a Kinesis event source",
//!   <https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis-filtering.html>). The
//!   patterns see `{"data": <the record's JSON>}`; a record that is not JSON matches none.
//!   Patterns are matched with quamina, a Rust implementation of the EventBridge pattern
//!   language Lambda uses.
//! - With `on_failure`, each discarded batch leaves an invocation record at that destination
//!   (see `on_failure.rs`).
//!
//! - With `tumbling_window`, each shard's records are grouped by arrival time into windows of
//!   that length (aligned to the Unix epoch); a batch never spans two windows. The
//!   aggregate's state goes from batch to batch as JSON, as Lambda passes it between
//!   invocations, and the window is closed (the aggregate's `close`) once the engine's clock
//!   passes its end, when a record of a later window arrives, or at shutdown. A state over
//!   1 MiB ends its window early ("Using tumbling windows with Kinesis Data Streams",
//!   <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
//!
//! Every record is accounted for: `received == consumed + filtered + discarded + blocked`.
//! `batch_window` and `parallelization` only change latency and concurrency in AWS; locally
//! the records that have arrived are batched and each shard is consumed in order.

use super::clock::{Alarm, Clock};
use super::inbox::{self, Held, InboxRx, Sent};
use super::on_failure::{Condition, Discarded, OnFailureSink};
use super::report::ConsumerReport;
use super::stream::{Feed, SourceRecord};
use crate::pipeline::AnyConsumer;
use crate::spec::ConsumerSpec;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Duration;

/// Errors kept in the report, one by one; the counts include every one.
const LISTED_ERRORS: usize = 10;

pub(crate) struct ConsumerTask {
    pub(crate) spec: &'static ConsumerSpec,
    pub(crate) stream_name: &'static str,
    pub(crate) consumer: AnyConsumer,
    pub(crate) rx: InboxRx,
    pub(crate) shards: usize,
    pub(crate) clock: Clock,
    /// The consumer's `filter_criteria`, compiled; `None` without any.
    pub(crate) filter: Option<Arc<quamina::Quamina<usize>>>,
    pub(crate) on_failure: Option<OnFailureSink>,
}

/// Compiles a consumer's filter patterns (checked at compile time, so an error here means a
/// hand-written spec).
pub(crate) fn compile_filters(
    patterns: &[&str],
) -> Result<Option<Arc<quamina::Quamina<usize>>>, String> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut q = quamina::Quamina::new();
    for (i, p) in patterns.iter().enumerate() {
        q.add_pattern(i, p)
            .map_err(|e| format!("filter {p}: {e}"))?;
    }
    Ok(Some(Arc::new(q)))
}

/// Whether a record passes `filter`: its data is JSON and, as `{"data": ..}`, matches a
/// pattern.
fn passes(filter: &quamina::Quamina<usize>, data: &[u8]) -> bool {
    if serde_json::from_slice::<serde::de::IgnoredAny>(data).is_err() {
        return false;
    }
    let mut event = Vec::with_capacity(data.len() + 9);
    event.extend_from_slice(b"{\"data\":");
    event.extend_from_slice(data);
    event.push(b'}');
    filter
        .matches_for_event(&event)
        .is_ok_and(|m| !m.is_empty())
}

impl ConsumerTask {
    /// Routes the stream's records to one task per shard (shards are consumed independently,
    /// as Lambda does), and sums their reports once the stream closes.
    pub(crate) async fn run(mut self) -> ConsumerReport {
        let mut senders = Vec::with_capacity(self.shards);
        let mut tasks = Vec::with_capacity(self.shards);
        for shard in 0..self.shards.max(1) {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            let worker = ShardConsumer {
                spec: self.spec,
                consumer: self.consumer.clone(),
                shard,
                rx,
                queue: VecDeque::new(),
                held: Held::default(),
                flushes: Vec::new(),
                closed: false,
                report: ConsumerReport::default(),
                clock: self.clock,
                filter: self.filter.clone(),
                on_failure: self.on_failure.clone(),
                open: None,
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        while let Some((feed, mut held)) = self.rx.recv().await {
            let records = match feed {
                Feed::Records(records) => records,
                Feed::Rejected(rejected) => {
                    // Counted (received and discarded, with the reason) by the first shard.
                    let _ = senders[0].send((Feed::Rejected(rejected), Held::default()));
                    continue;
                }
                Feed::Flush(ack) => {
                    // Every shard's task answers once it has consumed what it had; waiting
                    // for them elsewhere keeps records flowing to the other shards.
                    let acks: Vec<_> = senders
                        .iter()
                        .filter_map(|tx| {
                            let (ack, done) = oneshot::channel();
                            tx.send((Feed::Flush(ack), Held::default()))
                                .ok()
                                .map(|()| done)
                        })
                        .collect();
                    tokio::spawn(async move {
                        let _ = ack.send(super::stream::flushed(acks).await);
                    });
                    continue;
                }
            };
            let mut per_shard: Vec<Vec<SourceRecord>> = vec![Vec::new(); senders.len()];
            for r in records {
                let shard = (r.shard as usize).min(senders.len() - 1);
                per_shard[shard].push(r);
            }
            for (tx, records) in senders.iter().zip(per_shard) {
                if !records.is_empty() {
                    // The records' share of the input budget goes with them, held until they
                    // leave the shard's queue. A shard task ends only after its sender is
                    // dropped.
                    let share = held.split_off(records.iter().map(inbox::cost).sum());
                    let _ = tx.send((Feed::Records(records.into()), share));
                }
            }
        }
        drop(senders);
        let mut report = ConsumerReport {
            name: self.spec.lambda.name.to_owned(),
            stream: self.stream_name.to_owned(),
            ..ConsumerReport::default()
        };
        for task in tasks {
            match task.await {
                Ok(r) => report.add(&r),
                Err(e) => report
                    .errors
                    .push(format!("a shard's consumer task died: {e}")),
            }
        }
        report.errors.truncate(LISTED_ERRORS);
        report
    }
}

/// What consuming one batch came to.
enum Consumption {
    /// Every record was consumed.
    Done,
    /// The record at this index failed with this message (those before it were consumed).
    FailedAt(usize, String),
}

struct ShardConsumer {
    spec: &'static ConsumerSpec,
    consumer: AnyConsumer,
    shard: usize,
    rx: mpsc::UnboundedReceiver<Sent>,
    queue: VecDeque<SourceRecord>,
    /// The input budget the queued records hold.
    held: Held,
    /// Flushes to answer once the queue is consumed.
    flushes: Vec<oneshot::Sender<Result<(), String>>>,
    closed: bool,
    report: ConsumerReport,
    clock: Clock,
    filter: Option<Arc<quamina::Quamina<usize>>>,
    on_failure: Option<OnFailureSink>,
    /// With `tumbling_window`: the window being aggregated, if any.
    open: Option<OpenWindow>,
}

/// A tumbling window with records in it: its start and the state the last batch returned.
struct OpenWindow {
    start_ms: i64,
    state: serde_json::Value,
}

impl ShardConsumer {
    async fn run(mut self) -> ConsumerReport {
        let mut alarm = Alarm::new();
        while !self.closed {
            // A window closes once the engine's clock passes its end.
            let window_end = alarm.set(
                self.open
                    .as_ref()
                    .zip(self.window_ms())
                    .map(|(o, w)| self.clock.instant_of(o.start_ms + w)),
            );
            tokio::select! {
                message = self.rx.recv() => match message {
                    Some(sent) => self.take(sent),
                    None => self.closed = true,
                },
                () = alarm.rung(), if window_end => {
                    self.close_window(false).await;
                }
            }
            self.drain().await;
            // Everything that came before these flushes is consumed (or discarded).
            for ack in self.flushes.drain(..) {
                let _ = ack.send(Ok(()));
            }
        }
        // Shutdown: the open window ends with the run.
        self.close_window(false).await;
        self.report
    }

    /// The tumbling window's length in milliseconds, for a windowed consumer.
    fn window_ms(&self) -> Option<i64> {
        self.consumer.window()?;
        self.spec
            .tumbling_window_secs
            .map(|w| i64::from(w.max(1)) * 1000)
    }

    /// Closes the open window: the aggregate's `close`, retried as a failed invocation is.
    /// `early`: its state outgrew Lambda's limit.
    async fn close_window(&mut self, early: bool) {
        let consumer = self.consumer.clone();
        let (Some(open), Some(w), Some(windowed)) =
            (self.open.take(), self.window_ms(), consumer.window())
        else {
            return;
        };
        let window = crate::Window {
            start_ms: open.start_ms,
            end_ms: open.start_ms + w,
            shard_id: format!("shardId-{:012}", self.shard),
            terminated_early: early,
        };
        let mut retries = 0u32;
        let mut backoff = Duration::from_secs(1);
        loop {
            self.report.invocations += 1;
            let closed = match windowed.resume(&open.state) {
                Ok(state) => state.close(window.clone()).await,
                Err(e) => Err(e),
            };
            let Err(e) = closed else {
                self.report.windows += 1;
                return;
            };
            if self.report.errors.len() < LISTED_ERRORS {
                self.report.errors.push(format!(
                    "shard {}, window {}..{}: closing failed: {e}",
                    self.shard, window.start_ms, window.end_ms
                ));
            }
            let unlimited = self.spec.maximum_retries.is_none();
            if self.spec.maximum_retries.is_some_and(|max| retries >= max)
                || (unlimited && !self.wait(backoff).await)
            {
                self.report.windows_failed += 1;
                return;
            }
            retries += 1;
            self.report.retries += 1;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    fn take(&mut self, (feed, held): Sent) {
        match feed {
            Feed::Records(records) => {
                let mut records = records.into_vec();
                let mut held = held;
                if let crate::spec::StartingPosition::AtTimestamp(secs) =
                    self.spec.starting_position
                {
                    // Records from before the mapping's starting position are never read
                    // (AT_TIMESTAMP); their input budget goes back at once.
                    let start_ms = secs.saturating_mul(1000);
                    let before: Vec<SourceRecord> = records
                        .extract_if(.., |r| r.arrival_ms < start_ms)
                        .collect();
                    self.report.before_start += before.len() as u64;
                    drop(held.split_off(before.iter().map(inbox::cost).sum()));
                }
                self.report.received += records.len() as u64;
                if let Some(filter) = &self.filter {
                    // Filtered-out records are done with: the mapping moves past them.
                    let out: Vec<SourceRecord> = records
                        .extract_if(.., |r| !passes(filter, &r.data))
                        .collect();
                    self.report.filtered += out.len() as u64;
                    drop(held.split_off(out.iter().map(inbox::cost).sum()));
                }
                self.queue.extend(records);
                self.held.merge(held);
            }
            Feed::Flush(ack) => self.flushes.push(ack),
            Feed::Rejected(rejected) => {
                // Never handed to the function (Lambda could not have received them either).
                self.report.received += rejected.len() as u64;
                self.report.discarded += rejected.len() as u64;
                for r in rejected.iter() {
                    if self.report.errors.len() < LISTED_ERRORS {
                        self.report.errors.push(r.reason.clone());
                    }
                }
            }
        }
    }

    async fn consume(&mut self, batch: &[SourceRecord]) -> Consumption {
        if let Some(w) = self.window_ms() {
            return self.consume_window(batch, w).await;
        }
        for (i, r) in batch.iter().enumerate() {
            if let Err(e) = self.consumer.consume_kinesis_record(&r.data).await {
                return Consumption::FailedAt(i, e);
            }
        }
        Consumption::Done
    }

    /// Adds a batch (all of one window) to its window's state, as one invocation of a
    /// tumbling-window function: the state after the records before a failure is kept (the
    /// handler returns it with the failing record in `batchItemFailures`, kpipe's choice,
    /// docs/engine.md).
    async fn consume_window(&mut self, batch: &[SourceRecord], w: i64) -> Consumption {
        let consumer = self.consumer.clone();
        let Some(windowed) = consumer.window() else {
            return Consumption::Done;
        };
        let Some(first) = batch.first() else {
            return Consumption::Done;
        };
        let start_ms = first.arrival_ms.div_euclid(w) * w;
        if self.open.as_ref().is_some_and(|o| o.start_ms != start_ms) {
            self.close_window(false).await;
        }
        let prior = self
            .open
            .as_ref()
            .map_or(serde_json::Value::Null, |o| o.state.clone());
        let mut state = match windowed.resume(&prior) {
            Ok(state) => state,
            Err(e) => return Consumption::FailedAt(0, e),
        };
        let mut failed = None;
        'records: for (i, r) in batch.iter().enumerate() {
            let added = match crate::kpl::user_records(&r.data) {
                Some(subs) => subs.iter().try_for_each(|sub| {
                    state
                        .add(sub)
                        .map_err(|e| format!("in a KPL aggregate: {e}"))
                }),
                None => state.add(&r.data),
            };
            if let Err(e) = added {
                failed = Some((i, e));
                break 'records;
            }
        }
        match state.save() {
            Ok(saved) => {
                // The serialised size, as Lambda counts it against its limit.
                let bytes = serde_json::to_vec(&saved).map_or(usize::MAX, |v| v.len());
                let too_big = bytes > crate::pipeline::window::MAX_STATE_BYTES;
                self.open = Some(OpenWindow {
                    start_ms,
                    state: saved,
                });
                if too_big {
                    self.close_window(true).await;
                }
            }
            Err(e) => return Consumption::FailedAt(0, e),
        }
        match failed {
            Some((i, e)) => Consumption::FailedAt(i, e),
            None => Consumption::Done,
        }
    }

    /// Takes the first `n` records off the queue, giving their input budget back.
    fn remove(&mut self, n: usize) {
        let bytes: usize = self.queue.drain(..n).map(|r| inbox::cost(&r)).sum();
        drop(self.held.split_off(bytes));
    }

    /// Consumes the queue in batches, retrying as the mapping would.
    async fn drain(&mut self) {
        let full = self.spec.batch_size.max(1) as usize;
        let mut size = full;
        let mut retries = 0u32;
        let mut backoff = Duration::from_secs(1);
        while !self.queue.is_empty() {
            if self.expire(retries).await {
                // The batch being retried is gone: start over with a full one.
                size = full;
                retries = 0;
                backoff = Duration::from_secs(1);
                continue;
            }
            let mut n = size.min(self.queue.len());
            if let Some(w) = self.window_ms() {
                // A batch holds records of one window only.
                let start = self.queue[0].arrival_ms.div_euclid(w);
                n = self
                    .queue
                    .iter()
                    .take(n)
                    .take_while(|r| r.arrival_ms.div_euclid(w) == start)
                    .count();
            }
            let batch: Vec<SourceRecord> = self.queue.iter().take(n).cloned().collect();
            self.report.invocations += 1;
            let (at, message) = match self.consume(&batch).await {
                Consumption::Done => {
                    self.remove(n);
                    self.report.consumed += n as u64;
                    size = full;
                    retries = 0;
                    backoff = Duration::from_secs(1);
                    continue;
                }
                Consumption::FailedAt(at, message) => (at, message),
            };
            self.remove(at);
            self.report.consumed += at as u64;
            if self.report.errors.len() < LISTED_ERRORS {
                self.report.errors.push(format!(
                    "shard {}, record {}: {message}",
                    self.shard, batch[at].sequence
                ));
            }
            let remaining = n - at;
            if self.spec.bisect_on_error && remaining > 1 {
                // "Splitting batches doesn't consume the retry quota": the failing batch is
                // halved until the bad record is alone, and only then are retries counted
                // ("Retain discarded batch records for a Kinesis Data Streams event source in
                // Lambda", <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>).
                size = (remaining / 2).max(1);
                self.report.retries += 1;
                continue;
            }
            if self.spec.maximum_retries.is_some_and(|max| retries >= max) {
                // Retries exhausted: the batch being retried is discarded.
                self.send_on_failure(Discarded {
                    shard: self.shard,
                    records: &batch[at..],
                    condition: Condition::RetriesExhausted,
                    invocations: u64::from(retries) + 1,
                    error: Some(&message),
                    now_ms: self.clock.now_ms(),
                })
                .await;
                self.remove(remaining);
                self.report.discarded += remaining as u64;
                size = full;
                retries = 0;
                continue;
            }
            retries += 1;
            self.report.retries += 1;
            if self.spec.maximum_retries.is_none() {
                // Unlimited retries: the shard is blocked. Wait (taking in new records) and
                // retry; at shutdown, what waits is reported as blocked.
                if !self.wait(backoff).await {
                    self.report.blocked += self.queue.len() as u64;
                    self.remove(self.queue.len());
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }

    /// Records a discarded batch at the on-failure destination, if there is one.
    async fn send_on_failure(&mut self, batch: Discarded<'_>) {
        let Some(sink) = &self.on_failure else {
            return;
        };
        match sink.record(&batch).await {
            Ok(_) => self.report.on_failure_sent += 1,
            Err(e) => {
                self.report.on_failure_failed += 1;
                if self.report.errors.len() < LISTED_ERRORS {
                    self.report.errors.push(format!(
                        "shard {}: the on-failure destination did not take the record of {} discarded records: {e}",
                        self.shard,
                        batch.records.len()
                    ));
                }
            }
        }
    }

    /// Discards the records at the head of the queue that are older than
    /// `maximum_record_age`; true if there were any. `retries`: of the batch they were in.
    async fn expire(&mut self, retries: u32) -> bool {
        let Some(max_secs) = self.spec.maximum_record_age_secs else {
            return false;
        };
        let oldest_kept = self.clock.now_ms() - i64::from(max_secs) * 1000;
        let n = self
            .queue
            .iter()
            .take_while(|r| r.arrival_ms < oldest_kept)
            .count();
        if n == 0 {
            return false;
        }
        if self.report.errors.len() < LISTED_ERRORS {
            self.report.errors.push(format!(
                "shard {}, record {}: {n} records older than maximum_record_age ({max_secs} s) discarded",
                self.shard, self.queue[0].sequence
            ));
        }
        if self.on_failure.is_some() {
            let expired: Vec<SourceRecord> = self.queue.iter().take(n).cloned().collect();
            self.send_on_failure(Discarded {
                shard: self.shard,
                records: &expired,
                condition: Condition::RecordAgeExceeded,
                invocations: u64::from(retries),
                error: None,
                now_ms: self.clock.now_ms(),
            })
            .await;
        }
        self.remove(n);
        self.report.discarded += n as u64;
        self.report.expired += n as u64;
        true
    }

    /// Waits `backoff` on the engine's clock while queueing arriving records; false once the
    /// input has closed (shutdown).
    async fn wait(&mut self, backoff: Duration) -> bool {
        if self.closed {
            return false;
        }
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => return true,
                message = self.rx.recv() => match message {
                    Some(sent) => self.take(sent),
                    None => {
                        self.closed = true;
                        return false;
                    }
                },
            }
        }
    }
}
