//! Object compression as Firehose does it (Amazon Data Firehose, Convert input data format: <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html>): gzip, zip (one entry), Snappy
//! (the framing format) and Hadoop-compatible Snappy (Hadoop's block stream).

use crate::spec::Compression;
use std::io::Write;

/// Hadoop's `BlockCompressorStream` default buffer for Snappy: 256 KiB of input per block.
const HADOOP_BLOCK: usize = 256 * 1024;

/// An object's bytes while it is buffered: chunks of about 1 MiB, so appending never copies
/// what is already buffered (a single growing `Vec` reallocates and copies up to the buffer
/// size, which showed up as a third of the engine's time for 64 MiB buffers).
#[derive(Debug, Default)]
pub(crate) struct Chunks {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

const CHUNK: usize = 1024 * 1024;

impl Chunks {
    pub(crate) fn push(&mut self, data: &[u8]) {
        match self.chunks.last_mut() {
            // The first chunk grows by doubling, so small partitions stay small.
            None => self.chunks.push(data.to_vec()),
            Some(last) if last.len() + data.len() <= CHUNK => last.extend_from_slice(data),
            Some(_) => {
                let mut chunk = Vec::with_capacity(CHUNK.max(data.len()));
                chunk.extend_from_slice(data);
                self.chunks.push(chunk);
            }
        }
        self.len += data.len();
    }

    /// Appends a whole buffer, as a chunk of its own when it is large (no copy). Room it
    /// holds beyond a quarter of its length is given back, so what a buffer holds stays close
    /// to the bytes it counts.
    pub(crate) fn push_owned(&mut self, mut data: Vec<u8>) {
        if data.len() < CHUNK / 4 {
            return self.push(&data);
        }
        if data.capacity() - data.len() > data.len() / 4 {
            data.shrink_to_fit();
        }
        self.len += data.len();
        self.chunks.push(data);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The chunks, in order; a pushed slice is never split across two.
    #[cfg(feature = "parquet")]
    pub(crate) fn chunks(&self) -> &[Vec<u8>] {
        &self.chunks
    }
}

/// Compresses one object's bytes into the payload to write. `entry_name` names the file
/// inside a zip archive.
///
/// # Errors
/// An I/O error from an encoder (they write to memory).
pub(crate) fn compress(
    data: Chunks,
    compression: Compression,
    entry_name: &str,
) -> std::io::Result<object_store::PutPayload> {
    let chunks = data.chunks;
    let whole = |chunks: Vec<Vec<u8>>| -> Vec<u8> {
        if chunks.len() == 1 {
            chunks.into_iter().next().unwrap_or_default()
        } else {
            chunks.concat()
        }
    };
    let body = match compression {
        Compression::None => {
            return Ok(chunks.into_iter().map(bytes::Bytes::from).collect());
        }
        Compression::Gzip => return gzip(chunks, data.len),
        Compression::Zip => {
            let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated);
            zip.start_file(entry_name, options)
                .map_err(std::io::Error::other)?;
            for c in &chunks {
                zip.write_all(c)?;
            }
            zip.finish().map_err(std::io::Error::other)?.into_inner()
        }
        Compression::Snappy => {
            let mut enc = snap::write::FrameEncoder::new(Vec::with_capacity(data.len / 2));
            for c in &chunks {
                enc.write_all(c)?;
            }
            enc.into_inner()
                .map_err(|e| std::io::Error::other(e.to_string()))?
        }
        Compression::HadoopSnappy => {
            // Per block: 4-byte big-endian uncompressed length, then one chunk with its
            // 4-byte big-endian compressed length and raw Snappy data.
            let all = whole(chunks);
            let mut out = Vec::with_capacity(all.len() / 2);
            let mut enc = snap::raw::Encoder::new();
            for block in all.chunks(HADOOP_BLOCK) {
                let compressed = enc.compress_vec(block).map_err(std::io::Error::other)?;
                out.extend_from_slice(&(block.len() as u32).to_be_bytes());
                out.extend_from_slice(&(compressed.len() as u32).to_be_bytes());
                out.extend_from_slice(&compressed);
            }
            out
        }
    };
    Ok(body.into())
}

/// Objects smaller than this are gzip-compressed on one thread.
const PARALLEL_GZIP_MIN: usize = 4 * CHUNK;

/// Gzip: one member (GZIP file format, RFC 1952: <https://www.rfc-editor.org/rfc/rfc1952>),
/// as Firehose writes it. A large object on a machine with more than one core is compressed
/// in consecutive groups of chunks, one per core, the way pigz does it: each group is a raw
/// deflate stream flushed to a byte boundary and left open, the last one finished, so back to
/// back they are one deflate stream (RFC 1951: <https://www.rfc-editor.org/rfc/rfc1951>);
/// the checksum is the groups' CRC-32s combined. Any gzip reader reads it as the one member
/// it is; it is a few bytes per group larger than one thread's output.
fn gzip(chunks: Vec<Vec<u8>>, len: usize) -> std::io::Result<object_store::PutPayload> {
    let threads = super::parallel::cores().min(len / PARALLEL_GZIP_MIN).max(1);
    if threads == 1 {
        let mut enc = flate2::write::GzEncoder::new(
            Vec::with_capacity(len / 4),
            flate2::Compression::default(),
        );
        for c in &chunks {
            enc.write_all(c)?;
        }
        return Ok(enc.finish()?.into());
    }
    // Consecutive chunks of about len / threads bytes per group.
    let mut groups: Vec<&[Vec<u8>]> = Vec::with_capacity(threads);
    let (mut start, mut bytes) = (0, 0);
    for (i, c) in chunks.iter().enumerate() {
        bytes += c.len();
        if bytes >= len * (groups.len() + 1) / threads && groups.len() + 1 < threads {
            groups.push(&chunks[start..=i]);
            start = i + 1;
        }
    }
    groups.push(&chunks[start..]);
    let last = groups.len() - 1;
    let threads = groups.len();
    let deflated = super::parallel::map_on_threads(
        groups.into_iter().enumerate().collect(),
        threads,
        |(i, group)| deflate(group, i == last),
    );
    // The header flate2's GzEncoder writes at the default level: no flags, no time, OS unknown.
    let mut parts = vec![bytes::Bytes::from_static(&[
        0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255,
    ])];
    let mut crc = flate2::Crc::new();
    for group in deflated {
        let (body, group_crc) = group?;
        crc.combine(&group_crc);
        parts.push(bytes::Bytes::from(body));
    }
    let mut trailer = Vec::with_capacity(8);
    trailer.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE: the input's length modulo 2^32.
    trailer.extend_from_slice(&(len as u32).to_le_bytes());
    parts.push(bytes::Bytes::from(trailer));
    Ok(parts.into_iter().collect())
}

/// One group of [`gzip`]: raw deflate, finished if `last`, else flushed to a byte boundary
/// and left open; and its CRC-32.
fn deflate(chunks: &[Vec<u8>], last: bool) -> std::io::Result<(Vec<u8>, flate2::Crc)> {
    let bytes: usize = chunks.iter().map(Vec::len).sum();
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::with_capacity(bytes / 4),
        flate2::Compression::default(),
    );
    let mut crc = flate2::Crc::new();
    for c in chunks {
        enc.write_all(c)?;
        crc.update(c);
    }
    let body = if last {
        enc.finish()?
    } else {
        enc.flush_finish()?
    };
    Ok((body, crc))
}

/// Reverses the engine's compression of an object (tests and tools use it to read objects back).
///
/// # Errors
/// When the bytes are not in the given format.
pub fn decompress(data: &[u8], compression: Compression) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    match compression {
        Compression::None => out.extend_from_slice(data),
        Compression::Gzip => {
            flate2::read::GzDecoder::new(data).read_to_end(&mut out)?;
        }
        Compression::Zip => {
            let mut zip =
                zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(std::io::Error::other)?;
            zip.by_index(0)
                .map_err(std::io::Error::other)?
                .read_to_end(&mut out)?;
        }
        Compression::Snappy => {
            snap::read::FrameDecoder::new(data).read_to_end(&mut out)?;
        }
        Compression::HadoopSnappy => {
            let mut dec = snap::raw::Decoder::new();
            let mut rest = data;
            while rest.len() >= 8 {
                let clen = u32::from_be_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
                let chunk = rest
                    .get(8..8 + clen)
                    .ok_or_else(|| std::io::Error::other("truncated hadoop-snappy block"))?;
                out.extend_from_slice(&dec.decompress_vec(chunk).map_err(std::io::Error::other)?);
                rest = &rest[8 + clen..];
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flatten(p: object_store::PutPayload) -> Vec<u8> {
        p.iter().flat_map(|b| b.to_vec()).collect()
    }

    #[test]
    fn every_format_round_trips() {
        let data: Vec<u8> = (0..700_000u32)
            .flat_map(|i| format!("{{\"n\":{i}}}\n").into_bytes())
            .take(600_000)
            .collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Zip,
            Compression::Snappy,
            Compression::HadoopSnappy,
        ] {
            let mut chunks = Chunks::default();
            for piece in data.chunks(100_000) {
                chunks.push(piece);
            }
            assert_eq!(chunks.len(), data.len());
            let packed = flatten(compress(chunks, c, "object").unwrap());
            assert_eq!(decompress(&packed, c).unwrap(), data, "{c:?}");
            if c != Compression::None {
                assert!(packed.len() < data.len() / 2, "{c:?} compresses");
            }
        }
        let one = |c| {
            let mut chunks = Chunks::default();
            chunks.push(b"x");
            flatten(compress(chunks, c, "o").unwrap())
        };
        assert_eq!(&one(Compression::Gzip)[..2], &[0x1f, 0x8b]);
        assert_eq!(&one(Compression::Snappy)[..4], &[0xff, 0x06, 0x00, 0x00]);
        assert_eq!(&one(Compression::Zip)[..2], b"PK");
    }

    #[test]
    fn a_large_object_is_one_gzip_member_whichever_the_threads() {
        // About 10 MB of records in 1 MiB chunks: more than one group on a machine with two cores.
        let mut chunks = Chunks::default();
        let mut data = Vec::new();
        for i in 0..250_000u32 {
            let line = format!(
                "{{\"n\":{i},\"note\":\"reading {}\"}}\n",
                i.wrapping_mul(2_654_435_761)
            );
            chunks.push(line.as_bytes());
            data.extend_from_slice(line.as_bytes());
        }
        assert!(data.len() > 2 * PARALLEL_GZIP_MIN, "{}", data.len());
        let packed = flatten(compress(chunks, Compression::Gzip, "o").unwrap());
        // A single-member reader reads it all: it is one member, not several back to back.
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&packed[..]), &mut out)
            .unwrap();
        assert_eq!(out, data);
        // And it is what one thread writes but for the group boundaries: within 1% in size.
        let mut one = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        one.write_all(&data).unwrap();
        let one = one.finish().unwrap();
        assert_eq!(packed[..10], one[..10], "the same header");
        assert!(
            packed.len() <= one.len() + one.len() / 100,
            "{} vs {}",
            packed.len(),
            one.len()
        );
    }
}
