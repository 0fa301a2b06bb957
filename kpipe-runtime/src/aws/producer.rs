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
//! use kpipe_runtime::aws::producer::{KinesisProducer, RecordOutcome};
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
//!   at most 500 records and 10 MiB (aws-facts.md §1.2).
//! - A record that breaks a put-time limit (larger than the stream's maximum record size, a
//!   partition key outside 1–256 characters) is not sent: its outcome is `Rejected` with the
//!   reason, and the others go on.
//! - Entries that fail with `ProvisionedThroughputExceededException` or `InternalFailure` are
//!   sent again, alone of their request, after an exponential backoff with full jitter; entries
//!   that succeeded are never resent. After the last attempt an entry's outcome is `Failed`.
//! - At most `max_in_flight_bytes` are being sent at once across clones of a producer: a
//!   caller waits (backpressure) instead of anything being dropped.

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

/// Errors worth retrying (aws-facts.md §1.1, §1.2).
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
        }
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
        let mut entries: Vec<(usize, Entry)> = Vec::with_capacity(records.len());
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
                i,
                Entry {
                    partition_key: key,
                    explicit_hash_key: self.def.explicit_hash_key(r),
                    data,
                },
            ));
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
        mut pending: Vec<(usize, Entry)>,
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
            let results = self
                .client
                .put_records(&self.stream_name, &entries)
                .await
                .map_err(|message| ProduceError::Call {
                    written: *written,
                    message,
                })?;
            let mut again = Vec::new();
            for ((i, entry), result) in pending.into_iter().zip(results) {
                match result {
                    Ok((shard_id, sequence_number)) => {
                        *written += 1;
                        outcomes[i] = Some(RecordOutcome::Put {
                            shard_id,
                            sequence_number,
                        });
                    }
                    Err((code, message)) if retryable(&code) && attempt < self.retry.attempts => {
                        again.push((i, entry));
                        outcomes[i] = Some(RecordOutcome::Failed(format!("{code}: {message}")));
                    }
                    Err((code, message)) => {
                        outcomes[i] = Some(RecordOutcome::Failed(format!(
                            "{code}: {message} (after {attempt} attempt{})",
                            if attempt == 1 { "" } else { "s" }
                        )));
                    }
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

/// Packs entries into requests of at most 500 entries and 10 MiB (data plus partition keys),
/// keeping their order.
fn pack(entries: Vec<(usize, Entry)>) -> Vec<Vec<(usize, Entry)>> {
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

    fn entry(bytes: usize) -> (usize, Entry) {
        (
            0,
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
}
