//! A typed producer for a real Kinesis stream (aws-sdk-kinesis `PutRecords`). Feature `aws`.
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # pub struct Reading { sensor_id: String }
//! # kpipe_runtime::pipeline! {
//! #     pipeline Telemetry {
//! #         stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
//! #     }
//! # }
//! # async fn run(batch: Vec<Reading>) -> Result<(), Box<dyn std::error::Error>> {
//! use kpipe_runtime::kinesis::{KinesisProducer, RecordOutcome};
//!
//! let config = aws_config::load_from_env().await;
//! let producer = KinesisProducer::new(&config, Telemetry::readings());
//! for (record, outcome) in batch.iter().zip(producer.put_batch(&batch).await?) {
//!     if let RecordOutcome::Rejected(why) | RecordOutcome::Failed(why) = outcome {
//!         eprintln!("not put: {why}");
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - Records are encoded with the stream's codec and keyed by its partition key (and explicit
//!   hash key) exactly as the local engine keys them, then packed into `PutRecords` requests of
//!   at most 500 records and 10 MiB (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
//! - A record that breaks a put-time limit (larger than the stream's maximum record size, a
//!   partition key outside 1–256 characters) is not sent: its outcome is `Rejected` with the
//!   reason, and the others go on.
//! - Entries that fail with `ProvisionedThroughputExceededException` or `InternalFailure` are
//!   sent again, alone of their request, after an exponential backoff with full jitter; entries
//!   that succeeded are never resent. After the last attempt an entry's outcome is `Failed`.
//! - At most `max_in_flight_bytes` are being sent at once across clones of a producer: a
//!   caller waits (backpressure) instead of anything being dropped.
//! - With [`KinesisProducer::aggregate`], records with the same partition key (and explicit
//!   hash key) are packed into KPL aggregates (KPL aggregation format: <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>) no larger than the stream's
//!   record limit, in order; each keeps its own outcome (its aggregate's). Routing and per-key
//!   order are those of the unaggregated records. (The KPL itself packs by shard, which packs
//!   tighter across keys; kpipe does not predict shards.)

use crate::limits::{MAX_BATCH_BYTES, MAX_BATCH_RECORDS, check_entry};
use crate::pipeline::StreamDef;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// What became of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordOutcome {
    /// Written: the shard and the record's sequence number.
    Put {
        /// `shardId-000000000000`.
        shard_id: String,
        /// The sequence number Kinesis assigned.
        sequence_number: String,
    },
    /// Not sent: it breaks a put-time limit, or does not encode.
    Rejected(String),
    /// Sent, and failed on every attempt (or with an error that retrying cannot fix).
    Failed(String),
}

/// Why a whole batch could not be put.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProduceError {
    /// A `PutRecords` call failed as a whole (after the SDK's own retries). Earlier requests of
    /// the batch were written; the outcomes of this one's entries are unknown.
    Call {
        /// Records of the batch already written when the call failed.
        written: usize,
        /// The SDK's error.
        message: String,
    },
}

impl std::fmt::Display for ProduceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProduceError::Call { written, message } => write!(
                f,
                "PutRecords failed after {written} records of the batch were written: {message}"
            ),
        }
    }
}

impl std::error::Error for ProduceError {}

/// How failed entries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// Attempts per entry, the first included.
    pub attempts: u32,
    /// The first backoff; each next one doubles, up to `max_backoff`, with full jitter.
    pub base: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 8,
            base: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// One entry of a `PutRecords` request.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The partition key.
    pub partition_key: String,
    /// The explicit hash key, when the stream declares one.
    pub explicit_hash_key: Option<u128>,
    /// The record's bytes.
    pub data: Vec<u8>,
}

/// One entry's result in a `PutRecords` response: `Ok((shard, sequence))` or
/// `Err((error code, message))`.
pub type EntryResult = Result<(String, String), (String, String)>;

/// The `PutRecords` call, as a trait so that the retry logic can be tested with injected
/// failures; [`aws_sdk_kinesis::Client`] implements it.
pub trait PutRecords: Send + Sync + 'static {
    /// Puts `entries` on `stream`; one result per entry, in order.
    fn put_records<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [Entry],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<EntryResult>, String>> + Send + 'a>>;
}

impl PutRecords for aws_sdk_kinesis::Client {
    fn put_records<'a>(
        &'a self,
        stream: &'a str,
        entries: &'a [Entry],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<EntryResult>, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut req = self.put_records().stream_name(stream);
            for e in entries {
                let entry = aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                    .data(aws_sdk_kinesis::primitives::Blob::new(e.data.clone()))
                    .partition_key(&e.partition_key)
                    .set_explicit_hash_key(e.explicit_hash_key.map(|h| h.to_string()))
                    .build()
                    .map_err(|e| e.to_string())?;
                req = req.records(entry);
            }
            let out = req
                .send()
                .await
                .map_err(|e| aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string())?;
            Ok(out
                .records()
                .iter()
                .map(|r| match r.error_code() {
                    Some(code) => Err((
                        code.to_owned(),
                        r.error_message().unwrap_or_default().to_owned(),
                    )),
                    None => Ok((
                        r.shard_id().unwrap_or_default().to_owned(),
                        r.sequence_number().unwrap_or_default().to_owned(),
                    )),
                })
                .collect())
        })
    }
}

/// Errors worth retrying (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
fn retryable(code: &str) -> bool {
    matches!(
        code,
        "ProvisionedThroughputExceededException" | "InternalFailure" | "ServiceUnavailable"
    )
}

/// A typed producer for one stream of a pipeline. Cheap to clone; clones share the in-flight
/// budget.
pub struct KinesisProducer<T> {
    client: Arc<dyn PutRecords>,
    def: StreamDef<T>,
    stream_name: String,
    retry: Retry,
    in_flight: Arc<Semaphore>,
    in_flight_kib: u32,
    aggregate: bool,
}

impl<T> Clone for KinesisProducer<T> {
    fn clone(&self) -> Self {
        KinesisProducer {
            client: Arc::clone(&self.client),
            def: self.def,
            stream_name: self.stream_name.clone(),
            retry: self.retry,
            in_flight: Arc::clone(&self.in_flight),
            in_flight_kib: self.in_flight_kib,
            aggregate: self.aggregate,
        }
    }
}

impl<T> std::fmt::Debug for KinesisProducer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KinesisProducer")
            .field("stream", &self.stream_name)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The default in-flight budget: two full `PutRecords` requests.
const DEFAULT_IN_FLIGHT_BYTES: usize = 2 * MAX_BATCH_BYTES;

impl<T> KinesisProducer<T> {
    /// A producer for `stream` with the clients of `config`.
    pub fn new(config: &aws_config::SdkConfig, stream: StreamDef<T>) -> Self {
        Self::with_client(Arc::new(aws_sdk_kinesis::Client::new(config)), stream)
    }

    /// A producer calling `client` (an [`aws_sdk_kinesis::Client`], or a test double).
    pub fn with_client(client: Arc<dyn PutRecords>, stream: StreamDef<T>) -> Self {
        KinesisProducer {
            client,
            def: stream,
            stream_name: stream.spec().name.to_owned(),
            retry: Retry::default(),
            in_flight: Arc::new(Semaphore::new(DEFAULT_IN_FLIGHT_BYTES / 1024)),
            in_flight_kib: (DEFAULT_IN_FLIGHT_BYTES / 1024) as u32,
            aggregate: false,
        }
    }

    /// Packs records with the same partition key into KPL aggregates (default: off). Every
    /// kpipe consumer (the local engine, the Firehose and consumer handlers) de-aggregates, as
    /// Firehose and the KCL do.
    pub fn aggregate(mut self, enabled: bool) -> Self {
        self.aggregate = enabled;
        self
    }

    /// How failed entries are retried (default: 8 attempts, 100 ms doubling to 5 s).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// At most this many bytes are being sent at once (default 20 MiB; at least one full
    /// request); callers beyond it wait.
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        let kib = bytes.max(MAX_BATCH_BYTES) / 1024;
        self.in_flight = Arc::new(Semaphore::new(kib));
        self.in_flight_kib = kib as u32;
        self
    }

    /// Puts one record.
    ///
    /// # Errors
    /// As [`KinesisProducer::put_batch`].
    pub async fn put(&self, record: &T) -> Result<RecordOutcome, ProduceError> {
        let mut out = self.put_batch(std::slice::from_ref(record)).await?;
        Ok(out.pop().expect("producer: one record in, one outcome out"))
    }

    /// Puts records, packed into as few `PutRecords` requests as the limits allow; one outcome
    /// per record, in order.
    ///
    /// # Errors
    /// [`ProduceError::Call`] when a request fails as a whole.
    pub async fn put_batch(&self, records: &[T]) -> Result<Vec<RecordOutcome>, ProduceError> {
        let mut outcomes: Vec<Option<RecordOutcome>> = vec![None; records.len()];
        let mut entries: Vec<Packed> = Vec::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            let data = match self.def.codec().encode(r) {
                Ok(d) => d,
                Err(e) => {
                    outcomes[i] = Some(RecordOutcome::Rejected(format!(
                        "the record does not encode as JSON: {e}"
                    )));
                    continue;
                }
            };
            let key = self.def.partition_key(r);
            if let Err(e) = check_entry(self.def.spec(), &key, data.len()) {
                outcomes[i] = Some(RecordOutcome::Rejected(e.to_string()));
                continue;
            }
            entries.push((
                vec![i],
                Entry {
                    partition_key: key,
                    explicit_hash_key: self.def.explicit_hash_key(r),
                    data,
                },
            ));
        }
        if self.aggregate {
            entries = aggregate(entries, self.def.spec().max_record_size_kib as usize * 1024);
        }
        let mut written = 0;
        for chunk in pack(entries) {
            self.send(chunk, &mut outcomes, &mut written).await?;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| o.expect("producer: every record has an outcome"))
            .collect())
    }

    /// Sends one packed request, then its retryable failures again until they succeed or
    /// run out of attempts.
    async fn send(
        &self,
        mut pending: Vec<Packed>,
        outcomes: &mut [Option<RecordOutcome>],
        written: &mut usize,
    ) -> Result<(), ProduceError> {
        let bytes: usize = pending
            .iter()
            .map(|(_, e)| e.data.len() + e.partition_key.len())
            .sum();
        let kib = (bytes.div_ceil(1024) as u32).clamp(1, self.in_flight_kib);
        let _permit = self
            .in_flight
            .acquire_many(kib)
            .await
            .expect("producer: the in-flight semaphore is never closed");
        let mut attempt = 1;
        loop {
            let entries: Vec<Entry> = pending.iter().map(|(_, e)| e.clone()).collect();
            let mut results = self
                .client
                .put_records(&self.stream_name, &entries)
                .await
                .map_err(|message| ProduceError::Call {
                    written: *written,
                    message,
                })?;
            // A response must answer every entry, in order (API_PutRecords.html). One that
            // answers fewer leaves the rest unknown: they are retried like an internal failure
            // (at least once), never left without an outcome.
            if results.len() < entries.len() {
                tracing::warn!(
                    sent = entries.len(),
                    answered = results.len(),
                    "PutRecords answered fewer entries than were sent; retrying the rest"
                );
                results.resize_with(entries.len(), || {
                    Err((
                        "InternalFailure".to_owned(),
                        "no result for this entry in the PutRecords response".to_owned(),
                    ))
                });
            }
            let mut again = Vec::new();
            for ((indices, entry), result) in pending.into_iter().zip(results) {
                let outcome = match &result {
                    Ok((shard_id, sequence_number)) => {
                        *written += indices.len();
                        RecordOutcome::Put {
                            shard_id: shard_id.clone(),
                            sequence_number: sequence_number.clone(),
                        }
                    }
                    Err((code, message)) if retryable(code) && attempt < self.retry.attempts => {
                        RecordOutcome::Failed(format!("{code}: {message}"))
                    }
                    Err((code, message)) => RecordOutcome::Failed(format!(
                        "{code}: {message} (after {attempt} attempt{})",
                        if attempt == 1 { "" } else { "s" }
                    )),
                };
                for &i in &indices {
                    outcomes[i] = Some(outcome.clone());
                }
                if matches!(&result, Err((code, _)) if retryable(code) && attempt < self.retry.attempts)
                {
                    again.push((indices, entry));
                }
            }
            if again.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(self.backoff(attempt)).await;
            attempt += 1;
            pending = again;
        }
    }

    /// Full jitter: a uniform wait in [0, min(max, base * 2^(attempt-1))].
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .retry
            .base
            .saturating_mul(1 << (attempt - 1).min(20))
            .min(self.retry.max_backoff);
        let random = (uuid::Uuid::new_v4().as_u128() % 1_000_000) as f64 / 1_000_000.0;
        cap.mul_f64(random)
    }
}

/// An entry to send, with the indices of the records it carries (several when aggregated).
type Packed = (Vec<usize>, Entry);

/// Packs entries with the same partition key and explicit hash key into KPL aggregates of at
/// most `limit` bytes (data plus key), keeping the order of each key's records. An entry that
/// would not fit in an aggregate of its own is sent as it is.
fn aggregate(entries: Vec<Packed>, limit: usize) -> Vec<Packed> {
    // Per user record in an aggregate: its data, a protobuf tag, length and key index (at
    // most 16 bytes); per aggregate: magic, MD5, and the key table.
    const PER_RECORD: usize = 16;
    let fixed = |key: &str| crate::kpl::MAGIC.len() + 16 + key.len() + 16;
    let mut groups: Vec<Vec<Packed>> = Vec::new();
    let mut open: std::collections::HashMap<(String, Option<u128>), usize> =
        std::collections::HashMap::new();
    let mut out = Vec::new();
    let close = |members: Vec<Packed>, out: &mut Vec<Packed>| {
        if members.len() == 1 {
            out.extend(members);
            return;
        }
        let first = &members[0].1;
        let subs: Vec<(&str, &[u8])> = members
            .iter()
            .map(|(_, e)| (e.partition_key.as_str(), e.data.as_slice()))
            .collect();
        let data = crate::kpl::aggregate(&subs);
        let entry = Entry {
            partition_key: first.partition_key.clone(),
            explicit_hash_key: first.explicit_hash_key,
            data,
        };
        let indices = members.iter().flat_map(|(i, _)| i.clone()).collect();
        out.push((indices, entry));
    };
    for (indices, e) in entries {
        let key = (e.partition_key.clone(), e.explicit_hash_key);
        let size = e.data.len() + PER_RECORD;
        if let Some(&g) = open.get(&key) {
            let used: usize = groups[g]
                .iter()
                .map(|(_, m)| m.data.len() + PER_RECORD)
                .sum();
            if fixed(&key.0) + used + size <= limit {
                groups[g].push((indices, e));
                continue;
            }
            let members = std::mem::take(&mut groups[g]);
            close(members, &mut out);
            open.remove(&key);
        }
        if fixed(&key.0) + size > limit {
            out.push((indices, e));
            continue;
        }
        open.insert(key, groups.len());
        groups.push(vec![(indices, e)]);
    }
    for members in groups {
        if !members.is_empty() {
            close(members, &mut out);
        }
    }
    out
}

/// Packs entries into requests of at most 500 entries and 10 MiB (data plus partition keys),
/// keeping their order.
fn pack(entries: Vec<Packed>) -> Vec<Vec<Packed>> {
    let mut requests = Vec::new();
    let mut current = Vec::new();
    let mut bytes = 0;
    for (i, e) in entries {
        let size = e.data.len() + e.partition_key.len();
        if !current.is_empty()
            && (current.len() == MAX_BATCH_RECORDS || bytes + size > MAX_BATCH_BYTES)
        {
            requests.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push((i, e));
    }
    if !current.is_empty() {
        requests.push(current);
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize) -> Packed {
        (
            vec![0],
            Entry {
                partition_key: "k".into(),
                explicit_hash_key: None,
                data: vec![b'x'; bytes],
            },
        )
    }

    #[test]
    fn requests_hold_at_most_500_records_and_10_mib() {
        let sizes: Vec<usize> = pack((0..1201).map(|_| entry(10)).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [500, 500, 201]);
        // 1 MiB records (minus the key): ten fit in 10 MiB, the eleventh starts a request.
        let mib = 1024 * 1024 - 1;
        let sizes: Vec<usize> = pack((0..25).map(|_| entry(mib)).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, [10, 10, 5]);
    }

    fn keyed(i: usize, key: &str, bytes: usize) -> Packed {
        (
            vec![i],
            Entry {
                partition_key: key.into(),
                explicit_hash_key: None,
                data: vec![b'a' + (i % 26) as u8; bytes],
            },
        )
    }

    #[test]
    fn aggregates_group_by_key_keep_order_and_fit_the_record_limit() {
        let limit = 1024 * 1024;
        // 300 records of 10 KiB over two keys: about 100 fit per aggregate.
        let entries: Vec<_> = (0..300)
            .map(|i| keyed(i, if i % 2 == 0 { "a" } else { "b" }, 10 * 1024))
            .collect();
        let out = aggregate(entries, limit);
        assert!(out.len() < 10, "{}", out.len());
        let mut all: Vec<usize> = Vec::new();
        for (indices, e) in &out {
            assert!(e.data.len() + e.partition_key.len() <= limit);
            let subs = crate::kpl::deaggregate(&e.data);
            assert_eq!(subs.len(), indices.len());
            for (i, sub) in indices.iter().zip(&subs) {
                assert_eq!(sub[0], b'a' + (i % 26) as u8);
                assert_eq!(e.partition_key, if i % 2 == 0 { "a" } else { "b" });
            }
            // Each key's records stay in order.
            assert!(indices.windows(2).all(|w| w[0] < w[1]));
            all.extend(indices);
        }
        all.sort();
        assert_eq!(all, (0..300).collect::<Vec<_>>());
        // A record too big to be aggregated goes as it is.
        let out = aggregate(vec![keyed(0, "a", limit - 10)], limit);
        assert_eq!(out[0].1.data.len(), limit - 10);
    }
}
