//! The run report: what every stage received and what became of it.

use serde::Serialize;
use std::fmt;

/// Everything one run did. Every delivery satisfies
/// `received == delivered + dropped + failed + undelivered` ([`DeliveryReport::is_conserved`]):
/// delivered records are in objects the store acknowledged, failed ones in error documents,
/// and undelivered ones in neither, with the reason in [`DeliveryReport::errors`]. A run is
/// complete when nothing is undelivered ([`RunReport::undelivered`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// One entry per stream, in declaration order (like deliveries and consumers).
    pub streams: Vec<StreamReport>,
    /// One entry per delivery.
    pub deliveries: Vec<DeliveryReport>,
    /// One entry per consumer.
    pub consumers: Vec<ConsumerReport>,
    /// Wall time of the run, in milliseconds (on the engine's clock).
    pub elapsed_ms: u64,
}

/// The stream stage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    /// The stream's AWS name.
    pub name: String,
    /// Records accepted.
    pub records: u64,
    /// Bytes accepted (data plus partition keys).
    pub bytes: u64,
    /// Entries refused with `ProvisionedThroughputExceeded`.
    pub throttled: u64,
    /// Records accepted per shard.
    pub per_shard: Vec<u64>,
}

/// The transform stage of a delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TransformReport {
    /// Records sent to the transform.
    pub received: u64,
    /// Records it returned `Ok`.
    pub ok: u64,
    /// Records it returned `Dropped`.
    pub dropped: u64,
    /// Records that ended `ProcessingFailed` (per record, or because the invocation failed).
    pub failed: u64,
    /// Invocations (batches), retries included.
    pub invocations: u64,
    /// Invocations that failed and were retried or given up.
    pub failed_invocations: u64,
}

/// The S3 destination stage of a delivery.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DestinationReport {
    /// Records that reached the destination's buffers.
    pub received: u64,
    /// Records written to S3 objects.
    pub delivered: u64,
    /// Records that went to the error prefix instead (`activePartitionExceeded`, keys that
    /// could not be read).
    pub failed: u64,
    /// Records whose object the store did not acknowledge before the write deadline.
    pub undelivered: u64,
    /// Objects written.
    pub objects: u64,
    /// Bytes buffered, before compression.
    pub bytes_in: u64,
    /// Bytes written, after compression.
    pub bytes_out: u64,
}

/// A delivery's source record backup (`s3_backup`): a copy of every record as it was before
/// the transform; not part of the delivery's own conservation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// The backup's bucket.
    pub bucket: String,
    /// Source records in backup objects the store acknowledged.
    pub records: u64,
    /// Source records whose backup object was not stored before the write deadline.
    pub undelivered: u64,
    /// Backup objects written.
    pub objects: u64,
    /// Bytes written, after compression.
    pub bytes_out: u64,
}

/// Error output of a delivery (documents under the error prefix).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ErrorOutputReport {
    /// Error documents written.
    pub records: u64,
    /// Error objects written.
    pub objects: u64,
    /// Error documents whose object the store did not acknowledge (their records are
    /// counted as undelivered, not failed).
    pub lost_in_write: u64,
}

/// A consumer: what its function did with the stream's records. Every consumer satisfies
/// `received == consumed + filtered + discarded + blocked` ([`ConsumerReport::is_conserved`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ConsumerReport {
    /// The consumer's function name.
    pub name: String,
    /// The stream it reads.
    pub stream: String,
    /// Records read from the stream.
    pub received: u64,
    /// Records the function consumed.
    pub consumed: u64,
    /// Records that matched none of the consumer's `filter_criteria`: never handed to the
    /// function, and done with, as in AWS.
    pub filtered: u64,
    /// Records discarded after `maximum_retries` (AWS drops them, or sends them to an
    /// on-failure destination).
    pub discarded: u64,
    /// Of `discarded`, the records older than `maximum_record_age` when their turn came.
    pub expired: u64,
    /// Records that arrived before an `at_timestamp` starting position: never read, as in AWS.
    pub before_start: u64,
    /// Records still waiting behind a record that keeps failing (unlimited retries) at
    /// shutdown.
    pub blocked: u64,
    /// Invocation records written to the on-failure destination, one per discarded batch.
    pub on_failure_sent: u64,
    /// Invocation records the on-failure destination did not take (the batches are still
    /// counted in `discarded`; `errors` says why).
    pub on_failure_failed: u64,
    /// With `tumbling_window`: windows closed (the aggregate's `close` succeeded).
    pub windows: u64,
    /// With `tumbling_window`: windows whose `close` failed after its retries (their
    /// aggregate is lost; their records count as consumed).
    pub windows_failed: u64,
    /// Batches passed to the function, retries included.
    pub invocations: u64,
    /// Retries of a failed batch.
    pub retries: u64,
    /// The first failures (shard, record number, message).
    pub errors: Vec<String>,
}

impl ConsumerReport {
    /// `received == consumed + filtered + discarded + blocked`.
    pub fn is_conserved(&self) -> bool {
        self.received == self.consumed + self.filtered + self.discarded + self.blocked
    }

    pub(crate) fn add(&mut self, other: &ConsumerReport) {
        self.received += other.received;
        self.consumed += other.consumed;
        self.filtered += other.filtered;
        self.discarded += other.discarded;
        self.on_failure_sent += other.on_failure_sent;
        self.windows += other.windows;
        self.windows_failed += other.windows_failed;
        self.on_failure_failed += other.on_failure_failed;
        self.expired += other.expired;
        self.before_start += other.before_start;
        self.blocked += other.blocked;
        self.invocations += other.invocations;
        self.retries += other.retries;
        self.errors.extend(other.errors.iter().cloned());
    }
}

/// One delivery: its stages and totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// The delivery stream's AWS name.
    pub name: String,
    /// The destination bucket.
    pub bucket: String,
    /// Records that entered the delivery.
    pub received: u64,
    /// Records in objects the store acknowledged.
    pub delivered: u64,
    /// Records the transform dropped.
    pub dropped: u64,
    /// Records that failed, each in an error document the store acknowledged.
    pub failed: u64,
    /// Records neither delivered nor in an error document: their object or error object was
    /// not stored before the write deadline (the reasons are in `errors`).
    pub undelivered: u64,
    /// The transform stage, when the delivery has one.
    pub transform: Option<TransformReport>,
    /// The destination stage.
    pub destination: DestinationReport,
    /// The error output.
    pub error_output: ErrorOutputReport,
    /// The source record backup, with `s3_backup`.
    pub backup: Option<BackupReport>,
    /// Keys of the objects written (`bucket/key`), in the order they were written.
    pub objects: Vec<String>,
    /// Keys of the error objects written.
    pub error_objects: Vec<String>,
    /// Problems that are not record results (an object that could not be written, and why).
    pub errors: Vec<String>,
}

impl DeliveryReport {
    /// `received == delivered + dropped + failed + undelivered`: no record unaccounted for.
    pub fn is_conserved(&self) -> bool {
        self.received == self.delivered + self.dropped + self.failed + self.undelivered
    }
}

impl RunReport {
    /// The stream with this AWS name (`report.stream("sensor-readings")`).
    pub fn stream(&self, name: &str) -> Option<&StreamReport> {
        self.streams.iter().find(|s| s.name == name)
    }

    /// The delivery stream with this AWS name.
    pub fn delivery(&self, name: &str) -> Option<&DeliveryReport> {
        self.deliveries.iter().find(|d| d.name == name)
    }

    /// The consumer with this name.
    pub fn consumer(&self, name: &str) -> Option<&ConsumerReport> {
        self.consumers.iter().find(|c| c.name == name)
    }

    /// Whether every delivery and every consumer accounts for every record.
    pub fn is_conserved(&self) -> bool {
        self.deliveries.iter().all(DeliveryReport::is_conserved)
            && self.consumers.iter().all(ConsumerReport::is_conserved)
    }

    /// Records of every delivery that are neither delivered nor in an error document (a store
    /// that did not acknowledge their object): non-zero means the run is incomplete, and a
    /// reader of a real stream must not checkpoint past them.
    pub fn undelivered(&self) -> u64 {
        self.deliveries.iter().map(|d| d.undelivered).sum()
    }

    /// Source records whose `s3_backup` copy the store did not acknowledge (their records
    /// may have been delivered).
    pub fn not_backed_up(&self) -> u64 {
        self.deliveries
            .iter()
            .filter_map(|d| d.backup.as_ref())
            .map(|b| b.undelivered)
            .sum()
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("reports serialise")
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
            "stage", "received", "delivered", "dropped", "failed", "objects", "bytes"
        )?;
        for s in &self.streams {
            writeln!(
                f,
                "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
                format!("stream {}", s.name),
                s.records + s.throttled,
                s.records,
                "",
                s.throttled,
                "",
                human(s.bytes)
            )?;
        }
        for d in &self.deliveries {
            writeln!(
                f,
                "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
                format!("delivery {}", d.name),
                d.received,
                d.delivered,
                d.dropped,
                d.failed,
                d.destination.objects + d.error_output.objects,
                human(d.destination.bytes_out)
            )?;
            if let Some(t) = &d.transform {
                writeln!(
                    f,
                    "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
                    format!("  transform ({} calls)", t.invocations),
                    t.received,
                    t.ok,
                    t.dropped,
                    t.failed,
                    "",
                    ""
                )?;
            }
            let dest = &d.destination;
            writeln!(
                f,
                "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
                format!("  s3://{}", d.bucket),
                dest.received,
                dest.delivered,
                "",
                dest.failed,
                dest.objects,
                human(dest.bytes_out)
            )?;
            if d.error_output.records > 0 {
                writeln!(
                    f,
                    "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
                    "  error output",
                    d.error_output.records,
                    d.error_output.records - d.error_output.lost_in_write,
                    "",
                    d.error_output.lost_in_write,
                    d.error_output.objects,
                    ""
                )?;
            }
            if let Some(b) = &d.backup {
                writeln!(
                    f,
                    "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
                    format!("  backup s3://{}", b.bucket),
                    b.records + b.undelivered,
                    b.records,
                    "",
                    b.undelivered,
                    b.objects,
                    human(b.bytes_out)
                )?;
            }
            if d.undelivered > 0 {
                writeln!(
                    f,
                    "  {} records UNDELIVERED: not stored before the write deadline",
                    d.undelivered
                )?;
            }
            for e in &d.errors {
                writeln!(f, "  error: {e}")?;
            }
        }
        for c in &self.consumers {
            writeln!(
                f,
                "{:<34} {:>10} {:>10} {:>9} {:>9} {:>8} {:>12}",
                format!("consumer {}", c.name),
                c.received,
                c.consumed,
                c.filtered,
                c.discarded + c.blocked,
                "",
                format!("{} calls", c.invocations)
            )?;
            if c.blocked > 0 {
                writeln!(
                    f,
                    "  {} records blocked behind a record that keeps failing (unlimited retries)",
                    c.blocked
                )?;
            }
            if c.windows + c.windows_failed > 0 {
                writeln!(
                    f,
                    "  {} tumbling windows closed{}",
                    c.windows,
                    if c.windows_failed > 0 {
                        format!(", {} FAILED to close", c.windows_failed)
                    } else {
                        String::new()
                    }
                )?;
            }
            if c.on_failure_sent + c.on_failure_failed > 0 {
                writeln!(
                    f,
                    "  {} discarded batches recorded at the on-failure destination{}",
                    c.on_failure_sent,
                    if c.on_failure_failed > 0 {
                        format!(", {} NOT recorded", c.on_failure_failed)
                    } else {
                        String::new()
                    }
                )?;
            }
            if let Some(e) = c.errors.first() {
                writeln!(f, "  first failure: {e}")?;
            }
        }
        let all = self.is_conserved();
        write!(
            f,
            "conservation (received = delivered + dropped + failed + undelivered): {}",
            if all { "holds" } else { "VIOLATED" }
        )
    }
}
