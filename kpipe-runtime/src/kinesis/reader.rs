//! Reading a real Kinesis stream into the local engine (features `engine` and `aws`): the
//! engine's transforms and destinations fed by a stream in AWS (or moto) instead of the
//! in-process one. [`KinesisReader::drain_into`] reads every shard from its starting point to
//! its current end; [`KinesisReader::read_until`] keeps reading until told to stop, saving
//! checkpoints along the way once what they cover is delivered
//! ([`KinesisReader::checkpoint_every`]). Then the caller shuts the engine down (flushing every
//! buffer) and saves the checkpoints, so a restart resumes after what was delivered: at least
//! once, never lost.
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # pub struct Reading { sensor_id: String }
//! # kpipe_runtime::pipeline! {
//! #     pipeline Telemetry {
//! #         stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
//! #         s3 lake: Reading { bucket: "acme-telemetry" }
//! #         delivery to_lake: readings -> lake;
//! #     }
//! # }
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use kpipe_runtime::kinesis::{CheckpointStore, FileCheckpoints, KinesisReader, StartAt};
//!
//! let config = aws_config::load_from_env().await;
//! let store = FileCheckpoints::new("kpipe-checkpoints.json");
//! let engine = Telemetry::local().start()?;
//! let reader = KinesisReader::new(&config, Telemetry::readings().into());
//! let read = reader.drain_into(&engine, StartAt::Latest, &store).await?;
//! let report = engine.shutdown().await?; // every buffer flushed
//! store.save(&read.checkpoints)?;        // only now: at least once
//! # Ok(()) }
//! ```
//!
//! Limits kept (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>): at most 5 GetRecords calls per second per shard, and
//! about 2 MiB per second per shard. Shards are read parents first, so a resharded stream's
//! records stay in order per key.

use super::checkpoints::{CheckpointStore, Checkpoints, sequence_le};
use super::lineage::parents_first;
use crate::engine::stream::Rejected;
use crate::engine::{EngineError, LocalEngine};
use crate::pipeline::{AnyStream, Pipeline};
use aws_sdk_kinesis::types::ShardIteratorType;
use bytes::Bytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where reading starts on a shard without a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// Records put from now on (Firehose's choice for a stream source).
    Latest,
    /// Every record the stream still holds.
    TrimHorizon,
    /// Records put at or after this time (ms since the Unix epoch).
    AtTimestamp(i64),
}

/// What a drain read.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReadReport {
    /// Records read and put into the engine.
    pub records: u64,
    /// Records per shard id.
    pub per_shard: BTreeMap<String, u64>,
    /// GetRecords calls.
    pub calls: u64,
    /// Records an unfinished earlier run had already read (after the checkpoints it never
    /// saved): read again now, so possibly delivered twice. At least once, never lost.
    pub reread: u64,
    /// The checkpoints after this read (save them once the engine has shut down).
    pub checkpoints: Checkpoints,
    /// Records that broke the stream's declared limits (over `max_record_size`): each went to
    /// the deliveries' error output as a `processing-failed` document naming its shard and
    /// sequence number, and counts as discarded by consumers.
    pub rejected: u64,
    /// Checkpoints saved while reading continuously ([`KinesisReader::read_until`]), each
    /// once the engine had delivered everything read before it.
    pub saved: u64,
}

/// Why reading stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReadError {
    /// A Kinesis call failed.
    Call {
        /// The call (`ListShards`, `GetShardIterator`, `GetRecords`).
        call: &'static str,
        /// The SDK's error.
        message: String,
    },
    /// The engine refused the records (it is not this pipeline's stream, or it shut down).
    Engine(String),
    /// Records read were not stored (their object write failed past the engine's write
    /// deadline): reading stops, and no checkpoint is saved past them.
    Undelivered(String),
    /// The checkpoint store could not be read or written.
    Store(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Call { call, message } => write!(f, "{call} failed: {message}"),
            ReadError::Engine(m) => write!(f, "the engine refused the records: {m}"),
            ReadError::Undelivered(m) => write!(f, "reading stopped: {m}"),
            ReadError::Store(m) => write!(f, "the checkpoint store failed: {m}"),
        }
    }
}

impl std::error::Error for ReadError {}

impl From<EngineError> for ReadError {
    fn from(e: EngineError) -> Self {
        ReadError::Engine(e.to_string())
    }
}

fn call_err<E: std::error::Error + 'static>(call: &'static str, e: E) -> ReadError {
    ReadError::Call {
        call,
        message: aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
    }
}

/// At most 5 GetRecords calls per second per shard (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
const MIN_CALL_INTERVAL: Duration = Duration::from_millis(200);
/// About 2 MiB per second per shard can be read (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
const READ_BYTES_PER_SEC: f64 = 2.0 * 1024.0 * 1024.0;

/// Reads one stream of a pipeline from Kinesis.
#[derive(Debug)]
pub struct KinesisReader {
    client: aws_sdk_kinesis::Client,
    stream: AnyStream,
    page_size: Option<i32>,
    checkpoint_every: Duration,
}

/// How a delivery for a checkpoint ended.
enum Delivered {
    /// Everything read was delivered.
    All,
    /// Not within the time given.
    NotYet,
    /// Something read was not stored: no checkpoint may pass it.
    Undelivered(EngineError),
    /// The read was told to stop.
    Stopped,
}

/// How often a continuous read saves its checkpoints by default.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(60);

/// The state of one drain, shared by its shards.
struct Reading<'a> {
    state: &'a crate::engine::stream::LocalStream,
    store: &'a dyn CheckpointStore,
    earlier: &'a Checkpoints,
    progress: Checkpoints,
}

impl KinesisReader {
    /// A reader of `stream` with the clients of `config`.
    pub fn new(config: &aws_config::SdkConfig, stream: AnyStream) -> Self {
        KinesisReader {
            client: aws_sdk_kinesis::Client::new(config),
            stream,
            page_size: None,
            checkpoint_every: CHECKPOINT_EVERY,
        }
    }

    /// How often [`KinesisReader::read_until`] saves checkpoints while it reads (default
    /// [`CHECKPOINT_EVERY`]): it has the engine deliver everything read so far
    /// ([`LocalEngine::flush`]: buffers are written early), then saves. A restart after a
    /// crash reads again about this much at most. When delivering takes longer than this (a
    /// local consumer blocked by a failing record), the save is skipped, with a warning, and
    /// tried again later: checkpoints never pass a record not yet handled.
    pub fn checkpoint_every(mut self, every: Duration) -> Self {
        self.checkpoint_every = every.max(Duration::from_millis(1));
        self
    }

    /// At most this many records per GetRecords call (1..=10000; default: Kinesis's 10,000).
    pub fn page_size(mut self, records: u32) -> Self {
        self.page_size = Some(records.clamp(1, 10_000) as i32);
        self
    }

    /// Reads every shard (parents first) from its checkpoint, or from `start` when it has
    /// none, to its current end, putting the records into `engine`'s stream with their
    /// partition keys.
    ///
    /// # Errors
    /// The first failed Kinesis call, the store failing, or the engine refusing records.
    pub async fn drain_into<P: Pipeline>(
        &self,
        engine: &LocalEngine<P>,
        start: StartAt,
        store: &dyn CheckpointStore,
    ) -> Result<ReadReport, ReadError> {
        self.read(engine, start, store, true, std::future::pending::<()>())
            .await
    }

    /// Reads continuously, as [`KinesisReader::drain_into`] but without stopping at the end
    /// of the shards, until `stop` completes (Ctrl-C, say). New shards (after resharding) are
    /// picked up, each once its parents are read to their end. Checkpoints are saved along the
    /// way ([`KinesisReader::checkpoint_every`]), and once more by the caller after shutdown.
    ///
    /// # Errors
    /// As [`KinesisReader::drain_into`].
    pub async fn read_until<P: Pipeline>(
        &self,
        engine: &LocalEngine<P>,
        start: StartAt,
        store: &dyn CheckpointStore,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<ReadReport, ReadError> {
        self.read(engine, start, store, false, stop).await
    }

    /// `(shard id, parent, ending sequence number)`: a shard with an ending sequence number is
    /// closed (split or merged) and has children.
    async fn list_shards(&self) -> Result<Vec<ShardListing>, ReadError> {
        let mut shards = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut req = self.client.list_shards();
            req = match &next {
                Some(token) => req.next_token(token),
                None => req.stream_name(self.stream.spec().name),
            };
            let out = req.send().await.map_err(|e| call_err("ListShards", e))?;
            shards.extend(out.shards().iter().map(|s| {
                (
                    s.shard_id().to_owned(),
                    s.parent_shard_id().map(str::to_owned),
                    s.sequence_number_range()
                        .and_then(|r| r.ending_sequence_number())
                        .map(str::to_owned),
                )
            }));
            next = out.next_token().map(str::to_owned);
            if next.is_none() {
                return Ok(shards);
            }
        }
    }

    /// The reading loop: shards round-robin, each at most 5 calls a second, parents before
    /// children. `drain`: stop once every open shard came back empty; otherwise run until
    /// `stop`, listing shards again every 10 s and when one closes.
    async fn read<P: Pipeline>(
        &self,
        engine: &LocalEngine<P>,
        start: StartAt,
        store: &dyn CheckpointStore,
        drain: bool,
        stop: impl std::future::Future<Output = ()>,
    ) -> Result<ReadReport, ReadError> {
        let store_err = |e: std::io::Error| ReadError::Store(e.to_string());
        let checkpoints = store.load().map_err(store_err)?;
        let earlier = store.load_progress().map_err(store_err)?;
        let state = engine.stream_state(self.stream.spec())?;
        let mut report = ReadReport {
            checkpoints,
            ..ReadReport::default()
        };
        let mut reading = Reading {
            state: &state,
            store,
            earlier: &earlier,
            progress: earlier.clone(),
        };
        let mut cursors: Vec<Cursor> = Vec::new();
        let mut saved = report.checkpoints.clone();
        let mut saved_at = tokio::time::Instant::now();
        let mut listed_at: Option<tokio::time::Instant> = None;
        let mut relist = true;
        tokio::pin!(stop);
        loop {
            if relist {
                for (id, parent, ending) in self.list_shards().await? {
                    match cursors.iter_mut().find(|c| c.id == id) {
                        Some(c) => c.ending = ending,
                        None => {
                            let mut c = Cursor::new(id, parent);
                            c.ending = ending;
                            cursors.push(c);
                        }
                    }
                }
                // Parents first, so a child opened in the same pass follows its parent.
                let order = parents_first(
                    &cursors
                        .iter()
                        .map(|c| (c.id.clone(), c.parent.clone()))
                        .collect::<Vec<_>>(),
                );
                cursors.sort_by_key(|c| order.iter().position(|id| *id == c.id));
                listed_at = Some(tokio::time::Instant::now());
                relist = false;
            }
            // Open the shards whose parents are read to their end (or gone from the stream).
            for i in 0..cursors.len() {
                if cursors[i].opened {
                    continue;
                }
                let ready = match &cursors[i].parent {
                    None => true,
                    Some(p) => cursors.iter().find(|c| &c.id == p).is_none_or(|c| c.closed),
                };
                if ready {
                    let it = self
                        .open(&cursors[i].id, start, &report.checkpoints)
                        .await?;
                    let c = &mut cursors[i];
                    c.opened = true;
                    c.closed = it.is_none();
                    c.iterator = it;
                }
            }
            let now = tokio::time::Instant::now();
            for c in cursors.iter_mut() {
                if !c.opened || c.closed || (drain && c.drained) || c.next_call > now {
                    continue;
                }
                let Some(it) = c.iterator.take() else {
                    c.closed = true;
                    continue;
                };
                let page = self
                    .client
                    .get_records()
                    .shard_iterator(it)
                    .set_limit(self.page_size)
                    .send()
                    .await
                    .map_err(|e| call_err("GetRecords", e))?;
                report.calls += 1;
                let records = page.records();
                let bytes: usize = records.iter().map(|r| r.data().as_ref().len()).sum();
                c.next_call = tokio::time::Instant::now()
                    + MIN_CALL_INTERVAL
                        .max(Duration::from_secs_f64(bytes as f64 / READ_BYTES_PER_SEC));
                c.drained = records.is_empty();
                // A closed shard is done at its ending sequence number (some implementations
                // keep returning an iterator there), or when no iterator comes back.
                let at_end = c.ending.as_deref().is_some_and(|end| {
                    records
                        .last()
                        .map_or(c.drained, |r| sequence_le(end, r.sequence_number()))
                });
                put_page(&mut reading, &c.id, records, &mut report).await?;
                c.iterator = page.next_shard_iterator().map(str::to_owned);
                if c.iterator.is_none() || at_end {
                    c.iterator = None;
                    // A closed shard (resharded): its children can start.
                    c.closed = true;
                    relist = !drain;
                }
            }
            let active: Vec<&Cursor> = cursors
                .iter()
                .filter(|c| c.opened && !c.closed && !(drain && c.drained))
                .collect();
            let openable = cursors.iter().any(|c| {
                !c.opened
                    && c.parent.as_ref().is_none_or(|p| {
                        cursors.iter().find(|x| &x.id == p).is_none_or(|x| x.closed)
                    })
            });
            if drain && active.is_empty() && !openable {
                // Every open shard is read to its end; children of open parents wait for the
                // next run, as their parents are not closed.
                return Ok(report);
            }
            let wake = active
                .iter()
                .map(|c| c.next_call)
                .min()
                .unwrap_or_else(|| tokio::time::Instant::now() + MIN_CALL_INTERVAL);
            if !drain && listed_at.is_some_and(|t| t.elapsed() >= RELIST_EVERY) {
                relist = true;
            }
            if !drain && saved_at.elapsed() >= self.checkpoint_every {
                if report.checkpoints != saved {
                    let cut = report.checkpoints.clone();
                    match self.deliver(engine, &mut stop).await {
                        Delivered::All => {
                            store.save(&cut).map_err(store_err)?;
                            report.saved += 1;
                            saved = cut;
                        }
                        Delivered::NotYet => {}
                        Delivered::Undelivered(e) => {
                            return Err(ReadError::Undelivered(e.to_string()));
                        }
                        Delivered::Stopped => return Ok(report),
                    }
                }
                saved_at = tokio::time::Instant::now();
            }
            tokio::select! {
                () = tokio::time::sleep_until(wake) => {}
                () = &mut stop => return Ok(report),
            }
        }
    }

    /// Has the engine deliver everything read so far, for a checkpoint. Gives up after
    /// `checkpoint_every` (a local consumer blocked by a failing record holds deliveries up;
    /// the others go on, and so does reading) or when `stop` completes.
    async fn deliver<P: Pipeline, S: std::future::Future<Output = ()>>(
        &self,
        engine: &LocalEngine<P>,
        stop: &mut std::pin::Pin<&mut S>,
    ) -> Delivered {
        tokio::select! {
            flushed = engine.flush() => match flushed {
                Ok(()) => Delivered::All,
                Err(e) => Delivered::Undelivered(e),
            },
            () = stop.as_mut() => Delivered::Stopped,
            () = tokio::time::sleep(self.checkpoint_every) => {
                tracing::warn!(
                    stream = self.stream.spec().name,
                    "checkpoint skipped: what was read is not all delivered after {:?} (a consumer blocked by a failing record?)",
                    self.checkpoint_every
                );
                Delivered::NotYet
            }
        }
    }

    /// A shard iterator after the checkpoint, or at `start`.
    async fn open(
        &self,
        shard: &str,
        start: StartAt,
        checkpoints: &Checkpoints,
    ) -> Result<Option<String>, ReadError> {
        let mut req = self
            .client
            .get_shard_iterator()
            .stream_name(self.stream.spec().name)
            .shard_id(shard);
        req = match (checkpoints.get(shard), start) {
            (Some(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, StartAt::Latest) => req.shard_iterator_type(ShardIteratorType::Latest),
            (None, StartAt::TrimHorizon) => req.shard_iterator_type(ShardIteratorType::TrimHorizon),
            (None, StartAt::AtTimestamp(ms)) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(aws_sdk_kinesis::primitives::DateTime::from_millis(ms)),
        };
        Ok(req
            .send()
            .await
            .map_err(|e| call_err("GetShardIterator", e))?
            .shard_iterator()
            .map(str::to_owned))
    }
}

/// List the shards again this often when reading continuously.
const RELIST_EVERY: Duration = Duration::from_secs(10);

/// A shard as ListShards describes it: id, parent, ending sequence number when closed.
type ShardListing = (String, Option<String>, Option<String>);

/// Where one shard's reading is.
struct Cursor {
    id: String,
    parent: Option<String>,
    ending: Option<String>,
    iterator: Option<String>,
    opened: bool,
    closed: bool,
    drained: bool,
    next_call: tokio::time::Instant,
}

impl Cursor {
    fn new(id: String, parent: Option<String>) -> Self {
        Cursor {
            id,
            parent,
            ending: None,
            iterator: None,
            opened: false,
            closed: false,
            drained: false,
            next_call: tokio::time::Instant::now(),
        }
    }
}

/// Puts one page of a shard's records into the engine and moves the shard's checkpoint and
/// the run's progress.
async fn put_page(
    reading: &mut Reading<'_>,
    shard: &str,
    records: &[aws_sdk_kinesis::types::Record],
    report: &mut ReadReport,
) -> Result<(), ReadError> {
    if records.is_empty() {
        return Ok(());
    }
    // Records that break the declared limits (a stream whose maximum record size in AWS is
    // larger than declared) fail alone into the error output, with their shard and sequence
    // number; the others go on, so one bad record never stops the drain. The rest are put in
    // PutRecords-sized requests (at most 500 records and 10 MiB).
    let mut rejected = Vec::new();
    let mut entries = Vec::new();
    let mut entries_bytes = 0;
    for r in records {
        // Kinesis always returns the key; "-" stands in if a non-conforming endpoint leaves
        // it out.
        let key = r.partition_key().unwrap_or("-");
        let data = r.data().as_ref();
        if let Err(e) = reading.state.check_entry(key, data.len()) {
            rejected.push(Rejected {
                data: Bytes::copy_from_slice(data),
                arrival_ms: r
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or_else(|| reading.state.now_ms()),
                code: match e {
                    crate::engine::PutError::RecordTooLarge { .. } => "Kinesis.RecordTooLarge",
                    _ => "Kinesis.InvalidPartitionKey",
                },
                reason: format!("{shard} sequence number {}: {e}", r.sequence_number()),
            });
            continue;
        }
        let size = key.len() + data.len();
        if entries.len() == crate::engine::MAX_BATCH_RECORDS
            || entries_bytes + size > crate::engine::MAX_BATCH_BYTES
        {
            put_entries(reading, std::mem::take(&mut entries)).await?;
            entries_bytes = 0;
        }
        entries.push((key.to_owned(), None::<u128>, Bytes::copy_from_slice(data)));
        entries_bytes += size;
    }
    if !entries.is_empty() {
        put_entries(reading, entries).await?;
    }
    if !rejected.is_empty() {
        report.rejected += rejected.len() as u64;
        tracing::warn!(
            shard,
            records = rejected.len(),
            "records over the stream's declared limits went to the error output"
        );
        reading
            .state
            .reject(rejected)
            .await
            .map_err(|e| ReadError::Engine(e.to_string()))?;
    }
    let n = records.len() as u64;
    report.records += n;
    *report.per_shard.entry(shard.to_owned()).or_default() += n;
    if let Some(before) = reading.earlier.get(shard) {
        report.reread += records
            .iter()
            .filter(|r| sequence_le(r.sequence_number(), before))
            .count() as u64;
    }
    let last = records[records.len() - 1].sequence_number();
    report.checkpoints.insert(shard.to_owned(), last.to_owned());
    // Progress (not a checkpoint: nothing is delivered yet): how far any unfinished run has
    // read, so that a run killed from here on knows, when restarted, what it reads again.
    let furthest = reading.progress.entry(shard.to_owned()).or_default();
    if furthest.is_empty() || !sequence_le(last, furthest) {
        *furthest = last.to_owned();
    }
    reading
        .store
        .save_progress(&reading.progress)
        .map_err(|e| ReadError::Store(e.to_string()))
}

/// Puts one PutRecords-sized request of a page into the engine.
async fn put_entries(
    reading: &Reading<'_>,
    entries: Vec<(String, Option<u128>, Bytes)>,
) -> Result<(), ReadError> {
    let out = reading
        .state
        .put_records(entries)
        .await
        .map_err(|e| ReadError::Engine(e.to_string()))?;
    if out.failed_record_count > 0 {
        return Err(ReadError::Engine(format!(
            "{} records throttled by the local stream; read without enforce_shard_limits",
            out.failed_record_count
        )));
    }
    Ok(())
}
