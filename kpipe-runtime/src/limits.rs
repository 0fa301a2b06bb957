//! Kinesis's put-time limits, shared by the local engine and the producer for real streams.

use crate::spec::StreamSpec;

/// PutRecords takes at most 500 entries (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub const MAX_BATCH_RECORDS: usize = 500;
/// PutRecords takes at most 10 MiB per request, partition keys included (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub const MAX_BATCH_BYTES: usize = 10 * 1024 * 1024;
/// Why a put was refused as a whole (the request never reached a shard).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError {
    /// The partition key is empty or longer than 256 characters (Kinesis API, PutRecordsRequestEntry: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>).
    InvalidPartitionKey {
        /// Its length in characters.
        chars: usize,
    },
    /// Data plus partition key exceed the stream's maximum record size (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
    RecordTooLarge {
        /// The record's size (data plus partition key).
        bytes: usize,
        /// The stream's limit.
        limit: usize,
    },
    /// A Direct PUT record over Firehose's 1,000 KiB before base64 (Amazon Data Firehose
    /// Quota: <https://docs.aws.amazon.com/firehose/latest/dev/limits.html>).
    DirectRecordTooLarge {
        /// The record's size.
        bytes: usize,
        /// Firehose's limit.
        limit: usize,
    },
    /// More than 500 entries in one PutRecords (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
    TooManyRecords(usize),
    /// More than 10 MiB in one PutRecords (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
    RequestTooLarge(usize),
    /// The record could not be encoded as JSON.
    Encode(String),
    /// The engine was shut down.
    Closed,
    /// A delivery of the engine stopped on a bug (the reason); nothing more can be put.
    Stopped(String),
}

impl std::fmt::Display for PutError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PutError::InvalidPartitionKey { chars } => write!(
                f,
                "partition key has {chars} characters; Kinesis takes 1 to 256"
            ),
            PutError::RecordTooLarge { bytes, limit } => write!(
                f,
                "record is {bytes} bytes with its partition key; the stream takes at most {limit}"
            ),
            PutError::DirectRecordTooLarge { bytes, limit } => write!(
                f,
                "record is {bytes} bytes; Firehose takes records of at most {limit} bytes \
                 (1,000 KiB) before base64 (https://docs.aws.amazon.com/firehose/latest/dev/limits.html)"
            ),
            PutError::TooManyRecords(n) => {
                write!(
                    f,
                    "{n} records in one PutRecords; the limit is {MAX_BATCH_RECORDS}"
                )
            }
            PutError::RequestTooLarge(n) => write!(
                f,
                "PutRecords request of {n} bytes; the limit is {MAX_BATCH_BYTES} with partition keys"
            ),
            PutError::Encode(m) => write!(f, "record does not encode as JSON: {m}"),
            PutError::Closed => f.write_str("the engine has shut down"),
            PutError::Stopped(m) => write!(f, "the engine stopped: {m}"),
        }
    }
}

impl std::error::Error for PutError {}

/// Checks an entry against the put-time limits: a partition key of 1 to 256 characters, data
/// plus key within the stream's maximum record size (Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>; Kinesis API, PutRecordsRequestEntry: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>).
///
/// # Errors
/// [`PutError::InvalidPartitionKey`] or [`PutError::RecordTooLarge`].
pub fn check_entry(
    spec: &StreamSpec,
    partition_key: &str,
    data_len: usize,
) -> Result<(), PutError> {
    // A key of 1 to 256 bytes has 1 to 256 characters: only others are counted.
    if !(1..=256).contains(&partition_key.len()) {
        let chars = partition_key.chars().count();
        if !(1..=256).contains(&chars) {
            return Err(PutError::InvalidPartitionKey { chars });
        }
    }
    let size = data_len + partition_key.len();
    let limit = spec.max_record_size_kib as usize * 1024;
    if size > limit {
        return Err(PutError::RecordTooLarge { bytes: size, limit });
    }
    Ok(())
}
