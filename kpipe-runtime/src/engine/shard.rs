//! Kinesis shard routing and sequence numbers (Kinesis API, PutRecordsRequestEntry: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecordsRequestEntry.html>).
//!
//! A record's partition key is hashed with MD5 and the digest read as a big-endian `u128`
//! (or its explicit hash key is used); the record goes to the shard whose hash-key range
//! contains that value. A new stream's shards split `0..=2^128-1` into equal ranges, as
//! ListShards shows on AWS and on moto.

use md5::{Digest, Md5};

/// The hash key of a partition key: MD5 of its UTF-8 bytes, big-endian. A key of one block
/// (the usual case) is padded here and compressed once, without the hasher's buffering.
pub(crate) fn hash_key(partition_key: &str) -> u128 {
    let key = partition_key.as_bytes();
    if key.len() > MAX_ONE_BLOCK {
        return u128::from_be_bytes(Md5::digest(key).into());
    }
    let mut state = MD5_INIT;
    md5::block_api::compress(&mut state, &[padded(key)]);
    let mut digest = [0u8; 16];
    for (bytes, word) in digest.chunks_exact_mut(4).zip(state) {
        bytes.copy_from_slice(&word.to_le_bytes());
    }
    u128::from_be_bytes(digest)
}

/// MD5's initial state (RFC 1321, section 3.3).
const MD5_INIT: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];

/// The hash keys of many partition keys at once (a PutRecords call): the same values as
/// [`hash_key`], eight at a time. MD5 is most of routing a record, and the keys of a put are
/// short; eight of them are hashed side by side, one per lane of the same 32-bit operations
/// (which the compiler turns into SIMD instructions), instead of one after another. Keys over
/// 55 bytes (more than one MD5 block) go through [`hash_key`].
pub(crate) fn hash_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<u128> {
    let keys: Vec<&str> = keys.into_iter().collect();
    let mut out = vec![0u128; keys.len()];
    let mut lanes: Vec<usize> = Vec::with_capacity(LANES);
    let run = |lanes: &mut Vec<usize>, out: &mut Vec<u128>| {
        let mut blocks = [[0u8; 64]; LANES];
        for (block, &i) in blocks.iter_mut().zip(lanes.iter()) {
            *block = padded(keys[i].as_bytes());
        }
        let digests = md5_lanes(&blocks);
        for (digest, &i) in digests.iter().zip(lanes.iter()) {
            out[i] = u128::from_be_bytes(*digest);
        }
        lanes.clear();
    };
    for (i, key) in keys.iter().enumerate() {
        if key.len() > MAX_ONE_BLOCK {
            out[i] = hash_key(key);
            continue;
        }
        lanes.push(i);
        if lanes.len() == LANES {
            run(&mut lanes, &mut out);
        }
    }
    if !lanes.is_empty() {
        run(&mut lanes, &mut out);
    }
    out
}

/// Keys hashed side by side in [`hash_keys`].
const LANES: usize = 8;

/// The longest message MD5 pads into one 64-byte block (RFC 1321: <https://www.rfc-editor.org/rfc/rfc1321>).
const MAX_ONE_BLOCK: usize = 55;

/// `message` (at most [`MAX_ONE_BLOCK`] bytes) padded as MD5 pads it: a 1 bit, zeros, and its
/// length in bits, little-endian, in the last 8 bytes.
fn padded(message: &[u8]) -> [u8; 64] {
    let mut block = [0u8; 64];
    block[..message.len()].copy_from_slice(message);
    block[message.len()] = 0x80;
    block[56..].copy_from_slice(&(message.len() as u64 * 8).to_le_bytes());
    block
}

/// MD5 of [`LANES`] one-block messages at once (RFC 1321, section 3.4), lane by lane. Each
/// of the 64 steps is written out with its message word, constant and shift, so every
/// operation is the same on all lanes and compiles to vector instructions.
fn md5_lanes(blocks: &[[u8; 64]; LANES]) -> [[u8; 16]; LANES] {
    type V = [u32; LANES];
    let mut m = [[0u32; LANES]; 16];
    for (lane, block) in blocks.iter().enumerate() {
        for (w, word) in block.chunks_exact(4).enumerate() {
            m[w][lane] = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        }
    }
    let mut a: V = [MD5_INIT[0]; LANES];
    let mut b: V = [MD5_INIT[1]; LANES];
    let mut c: V = [MD5_INIT[2]; LANES];
    let mut d: V = [MD5_INIT[3]; LANES];
    #[inline(always)]
    fn step(a: &mut V, b: &V, f: V, m: &V, k: u32, s: u32) {
        for l in 0..LANES {
            a[l] = b[l].wrapping_add(
                a[l].wrapping_add(f[l])
                    .wrapping_add(k)
                    .wrapping_add(m[l])
                    .rotate_left(s),
            );
        }
    }
    #[inline(always)]
    fn ff(b: &V, c: &V, d: &V) -> V {
        let mut r = [0; LANES];
        for l in 0..LANES {
            r[l] = (b[l] & c[l]) | (!b[l] & d[l]);
        }
        r
    }
    #[inline(always)]
    fn gg(b: &V, c: &V, d: &V) -> V {
        let mut r = [0; LANES];
        for l in 0..LANES {
            r[l] = (d[l] & b[l]) | (!d[l] & c[l]);
        }
        r
    }
    #[inline(always)]
    fn hh(b: &V, c: &V, d: &V) -> V {
        let mut r = [0; LANES];
        for l in 0..LANES {
            r[l] = b[l] ^ c[l] ^ d[l];
        }
        r
    }
    #[inline(always)]
    fn ii(b: &V, c: &V, d: &V) -> V {
        let mut r = [0; LANES];
        for l in 0..LANES {
            r[l] = c[l] ^ (b[l] | !d[l]);
        }
        r
    }
    // One round: 16 steps `(message word, constant, shift)` from RFC 1321's tables, the
    // steps updating a, d, c and b in turn as in its `[abcd k s i]` notation.
    macro_rules! round {
        ($f:ident, $( ($g:expr, $k:expr, $s:expr) ),* ) => {
            let mut i = 0;
            $(
                match i % 4 {
                    0 => { let f = $f(&b, &c, &d); step(&mut a, &b, f, &m[$g], $k, $s); }
                    1 => { let f = $f(&a, &b, &c); step(&mut d, &a, f, &m[$g], $k, $s); }
                    2 => { let f = $f(&d, &a, &b); step(&mut c, &d, f, &m[$g], $k, $s); }
                    _ => { let f = $f(&c, &d, &a); step(&mut b, &c, f, &m[$g], $k, $s); }
                }
                i += 1;
            )*
            let _ = i;
        };
    }
    round!(
        ff,
        (0, 0xd76aa478, 7),
        (1, 0xe8c7b756, 12),
        (2, 0x242070db, 17),
        (3, 0xc1bdceee, 22),
        (4, 0xf57c0faf, 7),
        (5, 0x4787c62a, 12),
        (6, 0xa8304613, 17),
        (7, 0xfd469501, 22),
        (8, 0x698098d8, 7),
        (9, 0x8b44f7af, 12),
        (10, 0xffff5bb1, 17),
        (11, 0x895cd7be, 22),
        (12, 0x6b901122, 7),
        (13, 0xfd987193, 12),
        (14, 0xa679438e, 17),
        (15, 0x49b40821, 22)
    );
    round!(
        gg,
        (1, 0xf61e2562, 5),
        (6, 0xc040b340, 9),
        (11, 0x265e5a51, 14),
        (0, 0xe9b6c7aa, 20),
        (5, 0xd62f105d, 5),
        (10, 0x02441453, 9),
        (15, 0xd8a1e681, 14),
        (4, 0xe7d3fbc8, 20),
        (9, 0x21e1cde6, 5),
        (14, 0xc33707d6, 9),
        (3, 0xf4d50d87, 14),
        (8, 0x455a14ed, 20),
        (13, 0xa9e3e905, 5),
        (2, 0xfcefa3f8, 9),
        (7, 0x676f02d9, 14),
        (12, 0x8d2a4c8a, 20)
    );
    round!(
        hh,
        (5, 0xfffa3942, 4),
        (8, 0x8771f681, 11),
        (11, 0x6d9d6122, 16),
        (14, 0xfde5380c, 23),
        (1, 0xa4beea44, 4),
        (4, 0x4bdecfa9, 11),
        (7, 0xf6bb4b60, 16),
        (10, 0xbebfbc70, 23),
        (13, 0x289b7ec6, 4),
        (0, 0xeaa127fa, 11),
        (3, 0xd4ef3085, 16),
        (6, 0x04881d05, 23),
        (9, 0xd9d4d039, 4),
        (12, 0xe6db99e5, 11),
        (15, 0x1fa27cf8, 16),
        (2, 0xc4ac5665, 23)
    );
    round!(
        ii,
        (0, 0xf4292244, 6),
        (7, 0x432aff97, 10),
        (14, 0xab9423a7, 15),
        (5, 0xfc93a039, 21),
        (12, 0x655b59c3, 6),
        (3, 0x8f0ccc92, 10),
        (10, 0xffeff47d, 15),
        (1, 0x85845dd1, 21),
        (8, 0x6fa87e4f, 6),
        (15, 0xfe2ce6e0, 10),
        (6, 0xa3014314, 15),
        (13, 0x4e0811a1, 21),
        (4, 0xf7537e82, 6),
        (11, 0xbd3af235, 10),
        (2, 0x2ad7d2bb, 15),
        (9, 0xeb86d391, 21)
    );
    std::array::from_fn(|l| {
        let mut digest = [0u8; 16];
        for (word, (v, init)) in digest
            .chunks_exact_mut(4)
            .zip([a[l], b[l], c[l], d[l]].into_iter().zip(MD5_INIT))
        {
            word.copy_from_slice(&v.wrapping_add(init).to_le_bytes());
        }
        digest
    })
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
    fn keys_hashed_side_by_side_hash_as_one_by_one_and_as_md5() {
        // Every length around the one-block limit, multi-byte characters, and counts that
        // leave lanes empty.
        let mut keys: Vec<String> = (0..=70).map(|n| "k".repeat(n)).collect();
        keys.extend((0..70).map(|i| format!("sensor-{i:05}-é✓")));
        keys.push("x".repeat(256));
        for n in [0, 1, 7, 8, 9, keys.len()] {
            let some: Vec<&str> = keys[..n].iter().map(String::as_str).collect();
            let one_by_one: Vec<u128> = some.iter().map(|k| hash_key(k)).collect();
            assert_eq!(hash_keys(some.iter().copied()), one_by_one, "{n} keys");
        }
        // One by one (padded here for one block) as the md-5 crate hashes them.
        for key in &keys {
            let md5 = u128::from_be_bytes(Md5::digest(key.as_bytes()).into());
            assert_eq!(hash_key(key), md5, "{key}");
        }
        // RFC 1321's test suite, through the lanes.
        let rfc = hash_keys(["", "abc", "message digest"]);
        assert_eq!(rfc[0], 0xd41d8cd98f00b204e9800998ecf8427e);
        assert_eq!(rfc[1], 0x900150983cd24fb0d6963f7d28e17f72);
        assert_eq!(rfc[2], 0xf96b697d7cb7938d525a2f31aaf161d0);
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
