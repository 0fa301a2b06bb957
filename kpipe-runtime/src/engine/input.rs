//! Feeding a running engine with raw records: NDJSON lines from a file or stdin, or records
//! from a generator. What the command line's `run` uses; usable on its own.
//!
//! Every line is accounted for in the [`FeedReport`]:
//! - a line that decodes as the stream's record type is put with the partition key the typed
//!   producer would compute;
//! - a line that does not decode is still put, as-is (with the partition key `line-N`), as a
//!   broken producer's record would be: the transform then fails it into an error document,
//!   exactly as in AWS. It is counted and listed as `not_of_type`;
//! - a line the stream refuses (over the record-size limit, Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>) is not put: it
//!   is counted and listed as `rejected`, so nothing disappears silently.
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
//! use kpipe_runtime::engine::input::{Feeder, Input};
//!
//! let engine = Telemetry::local().root("kpipe-data").start()?;
//! let mut feeder = Feeder::new(&engine, Input::Stream(Telemetry::readings().into()))?;
//! let file = tokio::fs::File::open("readings.ndjson").await?;
//! feeder.feed_lines(tokio::io::BufReader::new(file)).await?;
//! let input = feeder.finish().await?;
//! let report = engine.shutdown().await?;
//! println!("{} lines, {} rejected\n{report}", input.lines, input.rejected);
//! # Ok(()) }
//! ```

use super::stream::{LocalStream, MAX_BATCH_BYTES, MAX_BATCH_RECORDS, PutError};
use super::{DirectProducer, EngineError, LocalEngine};
use crate::pipeline::{AnyStream, DeliveryDef, Pipeline};
use bytes::Bytes;
use serde::Serialize;
use std::sync::Arc;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// How many problems a [`FeedReport`] lists one by one; the counts include every one.
pub const LISTED_PROBLEMS: usize = 20;

/// Where fed records go.
#[derive(Debug)]
pub enum Input {
    /// A stream of the pipeline (records are checked against its type).
    Stream(AnyStream),
    /// A Direct PUT delivery of the pipeline (records go in as they are).
    Direct(DeliveryDef),
}

/// What happened to the fed records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FeedReport {
    /// Records read (non-blank lines, or generated records).
    pub lines: u64,
    /// Records the stream (or delivery) accepted, `not_of_type` ones included.
    pub put: u64,
    /// Records that are not of the stream's record type, put as-is.
    pub not_of_type: u64,
    /// Records refused at put time (too large, an invalid partition key): not put.
    pub rejected: u64,
    /// Entries refused by a shard's write limit and put again after a backoff.
    pub retried: u64,
    /// The first [`LISTED_PROBLEMS`] problems, in input order.
    pub problems: Vec<Problem>,
}

/// One record that did not go in as a typed record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// 1-based line number (or generated record number).
    pub line: u64,
    /// `not_of_type` or `rejected`.
    pub kind: &'static str,
    /// Why.
    pub message: String,
}

impl FeedReport {
    fn problem(&mut self, line: u64, kind: &'static str, message: String) {
        if self.problems.len() < LISTED_PROBLEMS {
            self.problems.push(Problem {
                line,
                kind,
                message,
            });
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            "rejected" => "rejected, not put",
            _ => "put as-is",
        };
        write!(f, "line {}: {} ({what})", self.line, self.message)
    }
}

/// Why feeding stopped.
#[derive(Debug)]
#[non_exhaustive]
pub enum FeedError {
    /// Reading the input failed after `line` lines.
    Read {
        /// Lines read before the failure.
        line: u64,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The engine refused a whole request (it was shut down).
    Put(PutError),
}

impl std::fmt::Display for FeedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FeedError::Read { line, error } => {
                write!(f, "reading the input after line {line}: {error}")
            }
            FeedError::Put(e) => write!(f, "putting records: {e}"),
        }
    }
}

impl std::error::Error for FeedError {}

enum Target {
    Stream {
        state: Arc<LocalStream>,
        stream: AnyStream,
    },
    Direct(DirectProducer),
}

/// Puts raw records into a running engine in PutRecords-sized batches.
pub struct Feeder {
    target: Target,
    batch: Vec<(String, Option<u128>, Bytes)>,
    batch_bytes: usize,
    report: FeedReport,
}

impl std::fmt::Debug for Feeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feeder")
            .field("report", &self.report)
            .finish()
    }
}

/// Reads one line (up to and including `\n`) into `buf`, keeping at most `cap + 1` bytes of
/// it; the line's whole length, or `None` at the end of the input.
async fn read_line_capped<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    cap: usize,
) -> std::io::Result<Option<usize>> {
    let mut total = 0;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok((total > 0).then_some(total));
        }
        let (chunk, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = (cap + 1).saturating_sub(buf.len());
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        total += used;
        reader.consume(used);
        if done {
            return Ok(Some(total));
        }
    }
}

impl Feeder {
    /// A feeder into one of `engine`'s inputs.
    ///
    /// # Errors
    /// [`EngineError::UnknownStage`] when the input is not one of the engine's pipeline.
    pub fn new<P: Pipeline>(engine: &LocalEngine<P>, input: Input) -> Result<Self, EngineError> {
        let target = match input {
            Input::Stream(stream) => Target::Stream {
                state: engine.stream_state(stream.spec())?,
                stream,
            },
            Input::Direct(delivery) => Target::Direct(engine.direct(delivery)?),
        };
        Ok(Feeder {
            target,
            batch: Vec::with_capacity(MAX_BATCH_RECORDS),
            batch_bytes: 0,
            report: FeedReport::default(),
        })
    }

    /// Feeds one raw record (line number `line`, 1-based).
    ///
    /// # Errors
    /// [`FeedError::Put`] when the engine has shut down.
    pub async fn feed(&mut self, line: u64, data: Bytes) -> Result<(), FeedError> {
        self.report.lines += 1;
        let (stream, state) = match &self.target {
            Target::Direct(direct) => {
                return match direct.put_bytes(data).await {
                    Ok(()) => {
                        self.report.put += 1;
                        Ok(())
                    }
                    Err(PutError::Closed) => Err(FeedError::Put(PutError::Closed)),
                    Err(e) => {
                        self.report.rejected += 1;
                        self.report.problem(line, "rejected", e.to_string());
                        Ok(())
                    }
                };
            }
            Target::Stream { stream, state } => (stream, state),
        };
        let (key, hash, not_of_type) = match stream.keys_of(&data) {
            Ok((key, hash)) => (key, hash, None),
            Err(e) => (
                format!("line-{line}"),
                None,
                Some(format!("not a `{}`: {e}", stream.record_type())),
            ),
        };
        // A line is counted once: rejected (not put), or put (typed or as-is).
        if let Err(e) = state.check_entry(&key, data.len()) {
            self.report.rejected += 1;
            let message = match not_of_type {
                Some(why) => format!("{e} ({why})"),
                None => e.to_string(),
            };
            self.report.problem(line, "rejected", message);
            return Ok(());
        }
        if let Some(message) = not_of_type {
            self.report.not_of_type += 1;
            self.report.problem(line, "not_of_type", message);
        }
        let size = key.len() + data.len();
        if self.batch.len() == MAX_BATCH_RECORDS || self.batch_bytes + size > MAX_BATCH_BYTES {
            self.flush().await?;
        }
        self.batch_bytes += size;
        self.batch.push((key, hash, data));
        Ok(())
    }

    /// Counts record `line` as rejected without putting it (a record that could not even be
    /// produced, such as a generated one that does not encode).
    pub fn reject(&mut self, line: u64, message: String) {
        self.report.lines += 1;
        self.report.rejected += 1;
        self.report.problem(line, "rejected", message);
    }

    /// Feeds every line of `reader` (NDJSON: one record per line; blank lines are skipped,
    /// `\r\n` endings accepted, bytes need not be UTF-8).
    ///
    /// # Errors
    /// [`FeedError::Read`] when reading fails; [`FeedError::Put`] when the engine has shut down.
    pub async fn feed_lines<R: AsyncBufRead + Unpin>(
        &mut self,
        mut reader: R,
    ) -> Result<(), FeedError> {
        let mut line_no = 0;
        let mut buf = Vec::new();
        // A line longer than any record the input takes is never held whole: its first
        // `cap + 1` bytes are kept (enough to know it is too long), the rest skipped.
        let cap = self.max_line_bytes();
        loop {
            buf.clear();
            let line = read_line_capped(&mut reader, &mut buf, cap)
                .await
                .map_err(|error| FeedError::Read {
                    line: line_no,
                    error,
                })?;
            let Some(total) = line else {
                return Ok(());
            };
            line_no += 1;
            if total > buf.len() {
                self.reject(
                    line_no,
                    format!(
                        "the line is {total} bytes, more than the {cap} bytes of the largest \
                         record this input takes; it was skipped without being read whole"
                    ),
                );
                continue;
            }
            while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                buf.pop();
            }
            if buf.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.feed(line_no, Bytes::copy_from_slice(&buf)).await?;
        }
    }

    /// The longest line that can hold a record of this input (its line ending included).
    fn max_line_bytes(&self) -> usize {
        let record = match &self.target {
            Target::Stream { state, .. } => state.spec.max_record_size_kib as usize * 1024,
            Target::Direct(_) => super::MAX_DIRECT_PUT_BYTES,
        };
        record + 2
    }

    /// Puts what is batched, putting entries refused by a shard's write limit again after an
    /// exponential backoff (never the ones that succeeded).
    async fn flush(&mut self) -> Result<(), FeedError> {
        let Target::Stream { state, .. } = &self.target else {
            return Ok(());
        };
        let mut pending = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let mut backoff = std::time::Duration::from_millis(10);
        while !pending.is_empty() {
            let out = state
                .put_records(pending.clone())
                .await
                .map_err(FeedError::Put)?;
            let mut again = Vec::new();
            for (entry, result) in pending.into_iter().zip(&out.records) {
                match result {
                    Ok(_) => self.report.put += 1,
                    Err(_) => again.push(entry),
                }
            }
            if !again.is_empty() {
                self.report.retried += again.len() as u64;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(std::time::Duration::from_secs(1));
            }
            pending = again;
        }
        Ok(())
    }

    /// Puts what is still batched and returns the report.
    ///
    /// # Errors
    /// [`FeedError::Put`] when the engine has shut down.
    pub async fn finish(mut self) -> Result<FeedReport, FeedError> {
        self.flush().await?;
        Ok(self.report)
    }
}
