//! Kinesis shard routing and sequence numbers (Kinesis API, PutRecordsRequestEntry: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>).
//!
//! A record's partition key is hashed with MD5 and the digest read as a big-endian `u128`
//! (or its explicit hash key is used); the record goes to the shard whose hash-key range
//! contains that value. A new stream's shards split `0..=2^128-1` into equal ranges, as
//! ListShards shows on AWS and on moto.

use md5::{Digest, Md5};

/// The hash key of a partition key: MD5 of its UTF-8 bytes, big-endian.
pub(crate) fn hash_key(partition_key: &str) -> u128 {
    let digest = Md5::digest(partition_key.as_bytes());
    u128::from_be_bytes(digest.into())
}

/// The starting hash key of each of `n` equal shards: `floor(i * 2^128 / n)`.
pub(crate) fn shard_starts(n: usize) -> Vec<u128> {
    let n128 = n.max(1) as u128;
    let q = u128::MAX / n128;
    let r = u128::MAX % n128;
    // 2^128 = q*n + r + 1, so i * 2^128 / n = q*i + (r + 1)*i / n.
    (0..n128).map(|i| q * i + (r + 1) * i / n128).collect()
}

/// The index of the shard whose range contains `hash`.
pub(crate) fn shard_for(starts: &[u128], hash: u128) -> usize {
    starts.partition_point(|s| *s <= hash).saturating_sub(1)
}

/// The shard id AWS gives the shard at `index` (`shardId-000000000000`).
pub(crate) fn shard_id(index: usize) -> String {
    format!("shardId-{index:012}")
}

/// A sequence number: unique and increasing within a shard, opaque, 56 decimal digits like
/// AWS's (Kinesis API, PutRecordsRequestEntry: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>). Never parse it.
pub(crate) fn sequence_number(shard: usize, n: u64) -> String {
    format!("49{:03}{:051}", shard % 1000, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_shards_split_at_two_to_the_127() {
        assert_eq!(shard_starts(2), vec![0, 1u128 << 127]);
        assert_eq!(shard_starts(1), vec![0]);
        let four = shard_starts(4);
        assert_eq!(four[1], 1u128 << 126);
        assert_eq!(four[3], 3u128 << 126);
    }

    // Measured on moto and kinesalite alike (issue #3): these splits follow AWS's method.
    #[test]
    fn routing_matches_aws_test_vectors() {
        let starts = shard_starts(2);
        let mut counts = [0; 2];
        for i in 0..500 {
            counts[shard_for(&starts, hash_key(&format!("pk-{}", i % 37)))] += 1;
        }
        assert_eq!(counts, [174, 326]);
        let mut counts = [0; 2];
        for i in 0..500 {
            counts[shard_for(&starts, hash_key(&format!("key-{i}")))] += 1;
        }
        assert_eq!(counts, [266, 234]);
    }

    #[test]
    fn sequence_numbers_increase_as_strings_and_numbers() {
        let a = sequence_number(1, 9);
        let b = sequence_number(1, 10);
        assert_eq!(a.len(), 56);
        assert!(a < b);
        assert_eq!(shard_id(3), "shardId-000000000003");
        assert_eq!(shard_for(&shard_starts(3), u128::MAX), 2);
    }
}
