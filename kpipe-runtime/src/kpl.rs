//! De-aggregation of KPL-aggregated records (KPL aggregation format: <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>).
//!
//! An aggregated record is the magic bytes `F3 89 9A C2`, a protobuf `AggregatedRecord`, and
//! the MD5 of the protobuf bytes. Anything else, including a blob whose checksum does not match,
//! is an ordinary record and passes through whole, as the KPL's de-aggregators do.

use md5::{Digest, Md5};
use prost::Message;

/// The KPL's magic prefix.
pub const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// `message AggregatedRecord` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct AggregatedRecord {
    /// Partition keys, indexed by the records.
    #[prost(string, repeated, tag = "1")]
    pub partition_key_table: Vec<String>,
    /// Explicit hash keys, indexed by the records.
    #[prost(string, repeated, tag = "2")]
    pub explicit_hash_key_table: Vec<String>,
    /// The user records.
    #[prost(message, repeated, tag = "3")]
    pub records: Vec<SubRecord>,
}

/// `message Record` of the KPL's `messages.proto`.
#[derive(Clone, PartialEq, Message)]
pub struct SubRecord {
    /// Index into the partition key table.
    #[prost(uint64, required, tag = "1")]
    pub partition_key_index: u64,
    /// Index into the explicit hash key table.
    #[prost(uint64, optional, tag = "2")]
    pub explicit_hash_key_index: Option<u64>,
    /// The user record's bytes.
    #[prost(bytes = "vec", required, tag = "3")]
    pub data: Vec<u8>,
}

/// The user records inside `data`: several for a valid KPL aggregate, otherwise `data` itself.
pub fn deaggregate(data: &[u8]) -> Vec<Vec<u8>> {
    match decode(data) {
        Some(agg) => agg.records.into_iter().map(|r| r.data).collect(),
        None => vec![data.to_vec()],
    }
}

/// Whether `data` is a valid KPL aggregate (magic, protobuf, matching MD5).
pub fn is_aggregated(data: &[u8]) -> bool {
    decode(data).is_some()
}

/// The user records of a valid KPL aggregate, decoded once; `None` for an ordinary record
/// (which every reader then handles whole). What each reader of a stream calls.
pub fn user_records(data: &[u8]) -> Option<Vec<Vec<u8>>> {
    if !data.starts_with(&MAGIC) {
        return None;
    }
    decode(data).map(|agg| agg.records.into_iter().map(|r| r.data).collect())
}

fn decode(data: &[u8]) -> Option<AggregatedRecord> {
    if data.len() < MAGIC.len() + 16 || data[..4] != MAGIC {
        return None;
    }
    let (body, digest) = data[4..].split_at(data.len() - 4 - 16);
    if Md5::digest(body).as_slice() != digest {
        return None;
    }
    // An aggregate of no records would vanish uncounted wherever it is de-aggregated: it is
    // taken as the plain record it also is, so it is counted, and fails to decode as one.
    AggregatedRecord::decode(body)
        .ok()
        .filter(|agg| !agg.records.is_empty())
}

/// Builds an aggregate, as the KPL does (used by tests and by producers that aggregate).
pub fn aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut keys: Vec<String> = Vec::new();
    let mut subs = Vec::with_capacity(records.len());
    for (key, data) in records {
        let index = keys.iter().position(|k| k == key).unwrap_or_else(|| {
            keys.push((*key).to_owned());
            keys.len() - 1
        });
        subs.push(SubRecord {
            partition_key_index: index as u64,
            explicit_hash_key_index: None,
            data: data.to_vec(),
        });
    }
    let body = AggregatedRecord {
        partition_key_table: keys,
        explicit_hash_key_table: Vec::new(),
        records: subs,
    }
    .encode_to_vec();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_round_trip() {
        let agg = aggregate(&[("a", b"one"), ("b", b"two"), ("a", b"three")]);
        assert!(is_aggregated(&agg));
        assert_eq!(
            deaggregate(&agg),
            vec![b"one".to_vec(), b"two".to_vec(), b"three".to_vec()]
        );
    }

    #[test]
    fn anything_else_passes_through_whole() {
        assert_eq!(
            deaggregate(b"{\"plain\":1}"),
            vec![b"{\"plain\":1}".to_vec()]
        );
        let mut bad = aggregate(&[("a", b"one")]);
        let last = bad.len() - 1;
        bad[last] ^= 1; // checksum mismatch
        assert!(!is_aggregated(&bad));
        assert_eq!(deaggregate(&bad), vec![bad.clone()]);
        // An empty aggregate is one (plain) record, never none.
        let empty = aggregate(&[]);
        assert!(!is_aggregated(&empty));
        assert_eq!(deaggregate(&empty), vec![empty.clone()]);
    }
}
