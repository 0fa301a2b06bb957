//! Records' JSON, read and written exactly as serde_json reads and writes it, faster.
//!
//! A record is decoded and encoded once per transform, and decoded once per consumer and per
//! Parquet row, so its JSON is on every path's critical line. kpipe's own serde
//! implementations do the JSON records usually hold: [`read`](mod@read), a `Deserializer` that makes the
//! same calls on the record type's `Deserialize` as serde_json does (strings, integers,
//! decimals without an exponent, objects, arrays), and [`write`](mod@write), a `Serializer` that writes
//! serde_json's bytes. Each gives up ([`Bail`]) at anything else, an error of the record type's
//! included, and serde_json then does the whole record from the start: every value, every
//! error and every byte is serde_json's. The tests hold them to serde_json on generated and
//! damaged records.
//!
//! [`first_special`] is the string scan the reader and the Lambda event reader share;
//! [`needs_escape`], the writer's.

mod read;
mod scan;
mod write;

pub(crate) use scan::{first_special, needs_escape};
use std::fmt;

/// kpipe's reader or writer gave up: the record is outside what it reads or writes, or the
/// record type's serde impl failed. serde_json then does the whole record again.
#[derive(Debug)]
struct Bail;

impl fmt::Display for Bail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Bail {}

impl serde::de::Error for Bail {
    #[cold]
    fn custom<T: fmt::Display>(_: T) -> Self {
        Bail
    }
}

impl serde::ser::Error for Bail {
    #[cold]
    fn custom<T: fmt::Display>(_: T) -> Self {
        Bail
    }
}

/// Whether a serde name is one of serde_json's private ones: its `RawValue` (a newtype struct
/// when read, a struct when written) and, with `arbitrary_precision`, its numbers, which only
/// serde_json reads and writes (as raw JSON).
fn is_serde_json_private(name: &str) -> bool {
    name.starts_with("$serde_json")
}

/// Decodes one record from its JSON bytes, as `serde_json::from_slice` would.
///
/// Where kpipe's reader gives up, the record is checked as UTF-8 once (SIMD, with simdutf8)
/// and read by serde_json as a `str`, which spares it checking each string; bytes that are not
/// UTF-8 go to `serde_json::from_slice` for its error, with its position.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    if read::agrees_with_serde_json()
        && let Ok(value) = read::from_slice(bytes)
    {
        return Ok(value);
    }
    match simdutf8::basic::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Appends one record's JSON to `out`: the bytes `serde_json::to_writer` writes (compact),
/// by kpipe's writer ([`write`](mod@write)) or, where it gives up, by serde_json. On an error (serde_json's),
/// `out` is as it was.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    value: &T,
    out: &mut Vec<u8>,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    if write::into(value, out).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    serde_json::to_writer(&mut *out, value).inspect_err(|_| out.truncate(start))
}
