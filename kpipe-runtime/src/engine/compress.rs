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
        Compression::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(data.len / 4),
                flate2::Compression::default(),
            );
            for c in &chunks {
                enc.write_all(c)?;
            }
            enc.finish()?
        }
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
}
