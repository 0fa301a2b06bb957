//! The in-process Kinesis stream: limits checked at put time, shard routing, per-shard FIFO
//! order and sequence numbers, optional per-shard write limits, and fan-out to the
//! deliveries that read the stream.

use super::clock::Clock;
use super::inbox::{self, Inbox, Slot};
use super::shard;
use crate::pipeline::StreamDef;
use crate::spec::StreamSpec;
use bytes::Bytes;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::sync::oneshot;
use tokio::time::{Duration, Instant};

pub use crate::limits::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, PutError};

/// A shard takes 1,000 records per second (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub const SHARD_RECORDS_PER_SEC: u64 = 1_000;
/// A shard takes 1 MiB per second, partition keys included (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub const SHARD_BYTES_PER_SEC: u64 = 1024 * 1024;

/// How many bytes a shard takes at once: its write capacity is a tank that refills at 1 MiB/s
/// and holds the stream's maximum record size (at least 1 MiB), so an idle shard takes one
/// record of any size the stream allows and then recovers at the sustained rate (Kinesis Data
/// Streams, Handle large records: <https://docs.aws.amazon.com/streams/latest/dev/large-records.html>).
/// AWS does not state the tank's size; docs/engine.md says what kpipe chose.
fn tank_capacity(spec: &StreamSpec) -> u64 {
    (u64::from(spec.max_record_size_kib) * 1024).max(SHARD_BYTES_PER_SEC)
}

/// Where an accepted record went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PutRecordOutput {
    shard: usize,
    sequence: u64,
}

impl PutRecordOutput {
    /// `shardId-000000000001`.
    pub fn shard_id(&self) -> String {
        shard::shard_id(self.shard)
    }

    /// The record's sequence number in its shard: an opaque string that increases within the
    /// shard (Kinesis API, PutRecordsRequestEntry: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>). Formatted on request, so puts do not pay for it.
    pub fn sequence_number(&self) -> String {
        shard::sequence_number(self.shard, self.sequence)
    }
}

/// Why one entry of a PutRecords failed while others may have succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// The shard's write limit was reached: back off and retry this entry (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
    ProvisionedThroughputExceeded {
        /// The shard that refused it.
        shard_id: String,
    },
}

impl EntryError {
    /// The error code AWS uses.
    pub fn code(&self) -> &'static str {
        match self {
            EntryError::ProvisionedThroughputExceeded { .. } => {
                "ProvisionedThroughputExceededException"
            }
        }
    }
}

impl std::fmt::Display for EntryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryError::ProvisionedThroughputExceeded { shard_id } => write!(
                f,
                "ProvisionedThroughputExceededException: rate exceeded for {shard_id}"
            ),
        }
    }
}

impl std::error::Error for EntryError {}

/// The result of a PutRecords: one entry per record, in order (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutRecordsOutput {
    /// How many entries failed.
    pub failed_record_count: usize,
    /// Per record, in request order.
    pub records: Vec<Result<PutRecordOutput, EntryError>>,
}

/// A record on its way from a stream to a delivery.
#[derive(Clone, Debug)]
pub(crate) struct SourceRecord {
    pub(crate) data: Bytes,
    pub(crate) arrival_ms: i64,
    /// Lineage: the shard and the record's number in it (its sequence number's counter).
    pub(crate) shard: u32,
    pub(crate) sequence: u64,
    /// The user record's place in a KPL aggregate (0 for ordinary records).
    pub(crate) subsequence: u32,
    /// The data starts as a KPL aggregate does: it may be one (checked in full where it is
    /// de-aggregated). Known from where the record was put, so a delivery does not read the
    /// bytes of every record for it.
    pub(crate) aggregate: bool,
}

impl SourceRecord {
    /// A record as put: `sequence` in `shard`.
    pub(crate) fn new(data: Bytes, arrival_ms: i64, shard: u32, sequence: u64) -> SourceRecord {
        SourceRecord {
            aggregate: data.starts_with(&crate::kpl::MAGIC),
            data,
            arrival_ms,
            shard,
            sequence,
            subsequence: 0,
        }
    }
}

struct ShardState {
    next_sequence: u64,
    window_start: Instant,
    window_records: u64,
    /// Write capacity in bytes, refilled at [`SHARD_BYTES_PER_SEC`] up to [`LocalStream::tank`].
    tank_bytes: u64,
    tank_at: Instant,
}

/// What goes from a stream (or a Direct PUT input) to the deliveries and consumers reading it.
#[derive(Debug)]
pub(crate) enum Feed {
    /// The records of one put call, in shard order.
    Records(Records),
    /// Records read from a real stream that break the stream's declared limits: each reader
    /// fails them into its error output (deliveries) or discards them (consumers), with the
    /// reason, and goes on.
    // Only a reader of a real stream (feature `aws`) rejects records.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    Rejected(Arc<[Rejected]>),
    /// Handle everything sent before this (invoke the transform, write every buffer, consume
    /// every queued record), then answer: an error when something the reader received is not
    /// stored (and so no checkpoint may pass it).
    Flush(oneshot::Sender<Result<(), String>>),
}

/// The records of one message: one record (a PutRecord) needs no allocation of its own (slow
/// to make when the thread that frees it is another one, as it always is here).
pub(crate) type Records = smallvec::SmallVec<[SourceRecord; 1]>;

/// A source record the stream refused (see [`Feed::Rejected`]).
#[derive(Debug)]
pub(crate) struct Rejected {
    pub(crate) data: Bytes,
    pub(crate) arrival_ms: i64,
    /// The error code of its error document.
    pub(crate) code: &'static str,
    /// Where it came from (shard id and sequence number) and why it was refused.
    pub(crate) reason: String,
}

/// The input channels of the deliveries and consumers reading a stream.
type Subscribers = Arc<[Inbox]>;

pub(crate) struct LocalStream {
    pub(crate) spec: &'static StreamSpec,
    starts: Vec<u128>,
    shards: Vec<Mutex<ShardState>>,
    /// The most bytes a shard's write capacity holds ([`tank_capacity`]).
    tank: u64,
    subscribers: std::sync::RwLock<Option<Subscribers>>,
    enforce_limits: bool,
    clock: Clock,
    failure: super::Failure,
    pub(crate) records: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) per_shard: Vec<AtomicU64>,
}

/// Shards of an on-demand stream locally: AWS starts new on-demand streams at 4 MB/s of write
/// capacity (Kinesis Data Streams, Choose the data stream capacity mode: <https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html>), i.e. 4 shards' worth.
const ON_DEMAND_SHARDS: usize = 4;

impl LocalStream {
    pub(crate) fn new(
        spec: &'static StreamSpec,
        enforce_limits: bool,
        clock: Clock,
        failure: super::Failure,
    ) -> Self {
        let n = match spec.capacity {
            crate::spec::Capacity::Provisioned { shards } => shards as usize,
            crate::spec::Capacity::OnDemand => ON_DEMAND_SHARDS,
        };
        let now = Instant::now();
        let tank = tank_capacity(spec);
        LocalStream {
            spec,
            tank,
            starts: shard::shard_starts(n),
            shards: (0..n)
                .map(|_| {
                    Mutex::new(ShardState {
                        next_sequence: 1,
                        window_start: now,
                        window_records: 0,
                        tank_bytes: tank,
                        tank_at: now,
                    })
                })
                .collect(),
            subscribers: std::sync::RwLock::new(Some(Arc::from(Vec::new()))),
            enforce_limits,
            clock,
            failure,
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            per_shard: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub(crate) fn subscribe(&self, tx: Inbox) {
        let mut guard = self.subscribers.write().expect("stream: subscriber lock");
        if let Some(subs) = guard.as_mut() {
            let mut all = subs.to_vec();
            all.push(tx);
            *subs = Arc::from(all);
        }
    }

    /// Stops accepting records; deliveries see their input end once in-flight puts finish.
    /// Puts waiting for a reader's input budget go through at once.
    pub(crate) fn close(&self) {
        let closed = self
            .subscribers
            .write()
            .expect("stream: subscriber lock")
            .take();
        for tx in closed.iter().flat_map(|s| s.iter()) {
            tx.close();
        }
    }

    /// Why a send to a reader failed: the engine stopped on a bug, or it shut down.
    fn send_error(&self) -> PutError {
        super::put_error(&self.failure)
    }

    fn senders(&self) -> Option<Subscribers> {
        self.subscribers
            .read()
            .expect("stream: subscriber lock")
            .clone()
    }

    /// Resolves once every delivery and consumer reading the stream has handled every record
    /// put before the call: transform batches invoked, buffers written, queued records
    /// consumed. A consumer whose shard is blocked (unlimited retries of a failing record)
    /// holds it up until the record goes through.
    pub(crate) async fn flush(&self) -> Result<(), String> {
        let Some(senders) = self.senders() else {
            // Closed: shutdown delivers everything.
            return Ok(());
        };
        // Room for the flush first, then every shard locked, in index order as puts lock
        // them: no put is half sent.
        let slots = reserve_flush(senders.iter()).await;
        let guards: Vec<_> = (0..self.shards.len()).map(|i| self.lock(i)).collect();
        let acks = send_flush_through(slots);
        drop(guards);
        flushed(acks).await
    }

    /// Hands records that break the stream's limits to every reader (see [`Feed::Rejected`]).
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(crate) async fn reject(&self, rejected: Vec<Rejected>) -> Result<(), PutError> {
        let Some(senders) = self.senders() else {
            return Err(PutError::Closed);
        };
        let rejected: Arc<[Rejected]> = Arc::from(rejected);
        for tx in senders.iter() {
            tx.send(Feed::Rejected(Arc::clone(&rejected)))
                .await
                .map_err(|_| self.send_error())?;
        }
        Ok(())
    }

    /// The engine clock's time, ms since the Unix epoch.
    #[cfg_attr(not(feature = "aws"), allow(dead_code))]
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Checks an entry against the put-time limits: a partition key of 1 to 256 characters,
    /// data plus key within the stream's record size (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>; Kinesis API, PutRecordsRequestEntry: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>).
    pub(crate) fn check_entry(&self, partition_key: &str, data_len: usize) -> Result<(), PutError> {
        crate::limits::check_entry(self.spec, partition_key, data_len)
    }

    fn route(
        &self,
        partition_key: &str,
        explicit: Option<u128>,
        data_len: usize,
    ) -> Result<usize, PutError> {
        self.check_entry(partition_key, data_len)?;
        let hash = explicit.unwrap_or_else(|| shard::hash_key(partition_key));
        Ok(shard::shard_for(&self.starts, hash))
    }

    pub(crate) async fn put_raw(
        &self,
        partition_key: &str,
        explicit: Option<u128>,
        data: Bytes,
    ) -> Result<Result<PutRecordOutput, EntryError>, PutError> {
        let shard = self.route(partition_key, explicit, data.len())?;
        let size = (data.len() + partition_key.len()) as u64;
        // One record, one shard: `append` without its bookkeeping for many.
        let Some(senders) = self.senders() else {
            return Err(PutError::Closed);
        };
        let slots = self.reserve(&senders, inbox::cost_of(data.len())).await?;
        let state = &mut *self.lock(shard);
        let arrival_ms = self.clock.now_ms();
        let sequence = match self.admit(state, shard, size, self.now()) {
            Ok(sequence) => sequence,
            Err(e) => return Ok(Err(e)),
        };
        let record = SourceRecord::new(data, arrival_ms, shard as u32, sequence);
        // Sent while the shard is locked, so every delivery sees it in order.
        send(slots, smallvec::smallvec![record]);
        Ok(Ok(PutRecordOutput { shard, sequence }))
    }

    /// A shard's state, locked. Puts lock a shard only to number and send what they
    /// reserved room for, never across a wait.
    fn lock(&self, shard: usize) -> MutexGuard<'_, ShardState> {
        self.shards[shard]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Room in every reader's input for one message of records costing `bytes`, taken
    /// before the shards are locked (waiting while a reader is behind).
    async fn reserve<'a>(
        &self,
        senders: &'a Subscribers,
        bytes: usize,
    ) -> Result<Slots<'a>, PutError> {
        let mut slots = Slots::new();
        for tx in senders.iter() {
            slots.push(tx.reserve(bytes).await.ok_or_else(|| self.send_error())?);
        }
        Ok(slots)
    }

    /// The time shard limits are counted in, when they are enforced.
    fn now(&self) -> Option<Instant> {
        self.enforce_limits.then(Instant::now)
    }

    /// Takes one record of `size` bytes into `shard` (whose state is `state`, locked): its
    /// sequence number, or the shard's write limit refusing it (limits only count with
    /// `now`, when enforced).
    fn admit(
        &self,
        state: &mut ShardState,
        shard: usize,
        size: u64,
        now: Option<Instant>,
    ) -> Result<u64, EntryError> {
        if let Some(now) = now {
            if now.duration_since(state.window_start) >= Duration::from_secs(1) {
                state.window_start = now;
                state.window_records = 0;
            }
            let refill = now.duration_since(state.tank_at).as_micros() as u64 * SHARD_BYTES_PER_SEC
                / 1_000_000;
            if refill > 0 {
                state.tank_bytes = (state.tank_bytes + refill).min(self.tank);
                state.tank_at = now;
            }
            if state.window_records + 1 > SHARD_RECORDS_PER_SEC || state.tank_bytes < size {
                self.throttled.fetch_add(1, Ordering::Relaxed);
                return Err(EntryError::ProvisionedThroughputExceeded {
                    shard_id: shard::shard_id(shard),
                });
            }
            state.window_records += 1;
            state.tank_bytes -= size;
        }
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        self.records.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(size, Ordering::Relaxed);
        self.per_shard[shard].fetch_add(1, Ordering::Relaxed);
        Ok(sequence)
    }

    pub(crate) async fn put_records(
        &self,
        entries: Vec<(String, Option<u128>, Bytes)>,
    ) -> Result<PutRecordsOutput, PutError> {
        if entries.len() > MAX_BATCH_RECORDS {
            return Err(PutError::TooManyRecords(entries.len()));
        }
        let total: usize = entries.iter().map(|(k, _, d)| k.len() + d.len()).sum();
        if total > MAX_BATCH_BYTES {
            return Err(PutError::RequestTooLarge(total));
        }
        // Like AWS, an invalid entry fails the whole request before anything is written.
        for (key, _, data) in &entries {
            self.check_entry(key, data.len())?;
        }
        let mut hashes = shard::hash_keys(
            entries
                .iter()
                .filter(|(_, explicit, _)| explicit.is_none())
                .map(|(key, _, _)| key.as_str()),
        )
        .into_iter();
        let routed = entries
            .into_iter()
            .map(|(key, explicit, data)| {
                let hash = explicit
                    .or_else(|| hashes.next())
                    .expect("stream: a hash per key");
                let size = (key.len() + data.len()) as u64;
                (shard::shard_for(&self.starts, hash), size, data)
            })
            .collect();
        let records = self.append(routed).await?;
        Ok(PutRecordsOutput {
            failed_record_count: records.iter().filter(|r| r.is_err()).count(),
            records,
        })
    }

    /// Appends routed records `(shard, size, data)` to their shards and hands the accepted ones
    /// to every delivery as one message. The shards involved are locked in index order for the
    /// whole call, so every delivery sees each shard in sequence order.
    async fn append(
        &self,
        entries: Vec<(usize, u64, Bytes)>,
    ) -> Result<Vec<Result<PutRecordOutput, EntryError>>, PutError> {
        let Some(senders) = self.senders() else {
            return Err(PutError::Closed);
        };
        let bytes = entries.iter().map(|e| inbox::cost_of(e.2.len())).sum();
        let slots = self.reserve(&senders, bytes).await?;
        let mut involved: Vec<usize> = entries.iter().map(|e| e.0).collect();
        involved.sort_unstable();
        involved.dedup();
        let mut guards: Vec<_> = involved.iter().map(|&i| self.lock(i)).collect();
        let now = self.now();
        let arrival_ms = self.clock.now_ms();
        let mut accepted = Vec::with_capacity(entries.len());
        let mut results = Vec::with_capacity(entries.len());
        for (shard, size, data) in entries {
            let state = &mut guards[involved
                .binary_search(&shard)
                .expect("stream: shard was locked")];
            match self.admit(state, shard, size, now) {
                Ok(sequence) => {
                    accepted.push(SourceRecord::new(data, arrival_ms, shard as u32, sequence));
                    results.push(Ok(PutRecordOutput { shard, sequence }));
                }
                Err(e) => results.push(Err(e)),
            }
        }
        if !accepted.is_empty() {
            // Sent while the shards are locked, so every delivery sees them in order.
            send(slots, Records::from_vec(accepted));
        }
        drop(guards);
        Ok(results)
    }
}

/// Room reserved in each reader's input, in the order of the stream's subscribers.
type Slots<'a> = smallvec::SmallVec<[Slot<'a>; 2]>;

/// Hands accepted records to every reader of the stream through the room reserved for them
/// (the caller holds their shards' locks, so every reader sees each shard in order).
fn send(slots: Slots<'_>, accepted: Records) {
    let mut slots = slots.into_iter();
    let last = slots.next_back();
    for slot in slots {
        slot.send(Feed::Records(accepted.clone()));
    }
    if let Some(last) = last {
        last.send(Feed::Records(accepted));
    }
}

/// Sends a flush to each of `senders`; the answers to wait for.
pub(crate) async fn send_flush<'a>(
    senders: impl Iterator<Item = &'a Inbox>,
) -> Vec<oneshot::Receiver<Result<(), String>>> {
    send_flush_through(reserve_flush(senders).await)
}

/// Room for a flush in each of `senders` (`None` for a reader that is gone).
async fn reserve_flush<'a>(senders: impl Iterator<Item = &'a Inbox>) -> Vec<Option<Slot<'a>>> {
    let mut slots = Vec::new();
    for tx in senders {
        slots.push(tx.reserve(0).await);
    }
    slots
}

/// Sends a flush through each of `slots` without waiting; the answers to wait for.
fn send_flush_through(slots: Vec<Option<Slot<'_>>>) -> Vec<oneshot::Receiver<Result<(), String>>> {
    slots
        .into_iter()
        .map(|slot| {
            let (ack, done) = oneshot::channel();
            match slot {
                Some(slot) => slot.send(Feed::Flush(ack)),
                // The reader is gone before shutdown: what it held is not known to be stored.
                None => {
                    let _ = ack.send(Err("a delivery or consumer task has stopped".to_owned()));
                }
            }
            done
        })
        .collect()
}

/// Waits for every answer to a flush; the first error, if any (every answer is awaited).
pub(crate) async fn flushed(
    acks: Vec<oneshot::Receiver<Result<(), String>>>,
) -> Result<(), String> {
    let mut first = Ok(());
    for done in acks {
        let answer = done.await.unwrap_or_else(|_| {
            Err("a delivery or consumer task stopped during a flush".to_owned())
        });
        if let Err(e) = answer {
            first = first.and(Err(e));
        }
    }
    first
}

/// A typed producer for one stream, from [`LocalEngine::producer`](super::LocalEngine::producer).
/// Cheap to clone; every clone writes to the same stream.
pub struct Producer<T> {
    pub(crate) stream: Arc<LocalStream>,
    pub(crate) def: StreamDef<T>,
}

impl<T> Clone for Producer<T> {
    fn clone(&self) -> Self {
        Producer {
            stream: Arc::clone(&self.stream),
            def: self.def,
        }
    }
}

impl<T> std::fmt::Debug for Producer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("stream", &self.stream.spec.name)
            .finish()
    }
}

impl<T> Producer<T> {
    /// Puts one record (PutRecord).
    ///
    /// # Errors
    /// A [`PutError`] when the record is refused as a whole; `Ok(Err(..))` when the shard's
    /// write limit was reached (only with [`LocalBuilder::enforce_shard_limits`](super::LocalBuilder::enforce_shard_limits)).
    pub async fn put(&self, record: &T) -> Result<Result<PutRecordOutput, EntryError>, PutError> {
        let data = self
            .def
            .codec()
            .encode(record)
            .map_err(|e| PutError::Encode(e.to_string()))?;
        let key = self.def.partition_key(record);
        self.stream
            .put_raw(&key, self.def.explicit_hash_key(record), Bytes::from(data))
            .await
    }

    /// Puts up to 500 records (PutRecords): each entry succeeds or fails on its own.
    ///
    /// # Errors
    /// A [`PutError`] when the request is refused as a whole (too many records, too large,
    /// an invalid entry); nothing was written then.
    pub async fn put_batch(&self, records: &[T]) -> Result<PutRecordsOutput, PutError> {
        let mut entries = Vec::with_capacity(records.len());
        for r in records {
            let data = self
                .def
                .codec()
                .encode(r)
                .map_err(|e| PutError::Encode(e.to_string()))?;
            entries.push((
                self.def.partition_key(r),
                self.def.explicit_hash_key(r),
                Bytes::from(data),
            ));
        }
        self.stream.put_records(entries).await
    }

    /// Puts up to 500 raw records `(partition key, bytes)` (PutRecords), bypassing the
    /// record type.
    ///
    /// # Errors
    /// As [`Producer::put_batch`].
    pub async fn put_batch_bytes(
        &self,
        entries: impl IntoIterator<Item = (String, Bytes)>,
    ) -> Result<PutRecordsOutput, PutError> {
        self.stream
            .put_records(entries.into_iter().map(|(k, d)| (k, None, d)).collect())
            .await
    }

    /// Puts raw bytes with a partition key, bypassing the record type: what a producer
    /// written in another language, or a broken one, might send.
    ///
    /// # Errors
    /// As [`Producer::put`].
    pub async fn put_bytes(
        &self,
        partition_key: &str,
        data: impl Into<Bytes>,
    ) -> Result<Result<PutRecordOutput, EntryError>, PutError> {
        self.stream.put_raw(partition_key, None, data.into()).await
    }
}
