//! The S3 stage of a delivery: one buffer per partition (and one per error output type, and
//! the source record backup), flushed on size or interval; objects named and compressed as
//! Firehose does and written with retries until the write deadline.

use super::{
    ACTIVE_PARTITION_EXCEEDED, Buffer, DELIVERY_VERSION, FORMAT_CONVERSION_FAILED,
    INVALID_OBJECT_KEY, KeyReader, MAX_ACTIVE_PARTITIONS, Output, PROCESSING_FAILED, State,
    Written,
};
use crate::engine::compress::compress;
use crate::engine::naming::{self, Ids, PrefixContext};
use crate::engine::stream::SourceRecord;
use crate::firehose::{ConversionErrorDocument, ErrorDocument, FORMAT_CONVERSION_CODE};
use crate::pipeline::guard::CatchUnwind;
use crate::spec::Compression;
use base64::Engine as _;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use std::sync::Arc;
use tokio::time::{Duration, Instant};

/// The first retry of a failed object write comes this soon; each next one waits twice as
/// long, up to [`MAX_RETRY_INTERVAL`].
const FIRST_RETRY: Duration = Duration::from_millis(100);

/// Firehose retries a failed S3 delivery every 5 seconds ("Handle data delivery failure",
/// <https://docs.aws.amazon.com/firehose/latest/dev/retry.html>); kpipe backs off to that.
const MAX_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// One write attempt that gets no answer for this long has failed (a hanging store).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);

impl State {
    pub(super) fn buffer_deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(u64::from(self.task.s3.buffer.interval_secs))
    }

    pub(super) fn note_deadline(&mut self, d: Instant) {
        self.buffers_deadline = Some(self.buffers_deadline.map_or(d, |x| x.min(d)));
    }

    pub(super) fn deliver_record(
        &mut self,
        data: &[u8],
        lambda_keys: Vec<(&'static str, String)>,
        arrival_ms: i64,
    ) {
        self.report.destination.received += 1;
        let keys = match self.partition_keys(data, lambda_keys) {
            Ok(keys) => keys,
            Err(reason) => {
                let code = "DynamicPartitioning.MetadataExtractionFailed";
                return self.fail_in_destination(data, arrival_ms, code, reason, PROCESSING_FAILED);
            }
        };
        if !self.buffers.contains_key(&keys) {
            if !keys.is_empty()
                && let Err(reason) = self.check_partition(&keys, arrival_ms)
            {
                let code = INVALID_OBJECT_KEY;
                return self.fail_in_destination(data, arrival_ms, code, reason, PROCESSING_FAILED);
            }
            if self.task.s3.dynamic_partitioning() && self.buffers.len() >= MAX_ACTIVE_PARTITIONS {
                // Records beyond the active partition limit go to the error prefix as
                // `activePartitionExceeded` (Amazon Data Firehose, Buffering:
                // https://docs.aws.amazon.com/firehose/latest/dev/buffering.html).
                let code = "DynamicPartitioning.ActivePartitionsLimitExceeded";
                let reason = format!("more than {MAX_ACTIVE_PARTITIONS} active partitions");
                return self.fail_in_destination(
                    data,
                    arrival_ms,
                    code,
                    reason,
                    ACTIVE_PARTITION_EXCEEDED,
                );
            }
            let d = self.buffer_deadline();
            self.note_deadline(d);
            self.buffers
                .insert(keys.clone(), Buffer::new(arrival_ms, d));
        }
        let buffer = self
            .buffers
            .get_mut(&keys)
            .expect("delivery: buffer was just ensured");
        if let Some((converter, _)) = &self.task.conversion {
            // Converted records are parsed one by one: no delimiter, and each one's length.
            let record = match data {
                [record @ .., b'\n'] if self.task.s3.newline => record,
                _ => data,
            };
            buffer.data.push(record);
            buffer.lens.push(record.len() as u32);
            if buffer.lens.len() == super::super::columnar::ROW_GROUP_ROWS {
                // A full row group is built on a blocking thread while records keep coming.
                let data = std::mem::take(&mut buffer.data);
                let lens = std::mem::take(&mut buffer.lens);
                buffer.handed_off += data.len() as u64;
                let converter = Arc::clone(converter);
                buffer.groups.push(tokio::task::spawn_blocking(move || {
                    converter.build(data, lens)
                }));
            }
        } else {
            buffer.data.push(data);
        }
        buffer.records += 1;
        buffer.oldest_ms = buffer.oldest_ms.min(arrival_ms);
        if buffer.bytes() >= self.task.s3.buffer.size_bytes {
            let buffer = self.buffers.remove(&keys).expect("delivery: buffer exists");
            self.flush(buffer, keys, Output::Data);
        }
    }

    /// Whether `bytes` more fit in the destination's one buffer (no partitions) without
    /// reaching its size, so that delivering them record by record would flush nothing.
    pub(super) fn fits_whole(&self, bytes: usize) -> bool {
        let held = self.buffers.get(&Vec::new()).map_or(0, Buffer::bytes);
        held + (bytes as u64) < self.task.s3.buffer.size_bytes
    }

    /// The outputs of `records` records back to back (the oldest arrived at `oldest_ms`) into
    /// the destination's one buffer, which they fit in ([`State::fits_whole`]): what
    /// [`State::deliver_record`] does for each, at once.
    pub(super) fn deliver_whole(&mut self, outputs: Vec<u8>, records: u64, oldest_ms: i64) {
        if records == 0 {
            return;
        }
        self.report.destination.received += records;
        if !self.buffers.contains_key(&Vec::new()) {
            let d = self.buffer_deadline();
            self.note_deadline(d);
            self.buffers.insert(Vec::new(), Buffer::new(oldest_ms, d));
        }
        let buffer = self
            .buffers
            .get_mut(&Vec::new())
            .expect("delivery: buffer was just ensured");
        buffer.data.push_owned(outputs);
        buffer.records += records;
        buffer.oldest_ms = buffer.oldest_ms.min(oldest_ms);
    }

    /// A record that reached the S3 stage but cannot be delivered: an error document (with
    /// the record as the destination got it, without kpipe's delimiter) under `error_type`.
    pub(super) fn fail_in_destination(
        &mut self,
        data: &[u8],
        arrival_ms: i64,
        code: &str,
        reason: String,
        error_type: &'static str,
    ) {
        self.report.failed += 1;
        self.report.destination.failed += 1;
        let record = self.record_of(data);
        let now = self.task.clock.now_ms();
        let doc = ErrorDocument::new(record, arrival_ms, 1, code, reason, now, None);
        self.write_error(error_type, doc.to_line(), arrival_ms);
    }

    /// Records of a converting destination that did not convert: each gets a
    /// `format-conversion-failed` document ("Handling errors for data format conversion",
    /// <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html>).
    fn fail_conversion(&mut self, unconverted: Vec<(Vec<u8>, String)>, arrival_ms: i64) {
        let Some((_, table)) = &self.task.conversion else {
            return;
        };
        let table = table.clone();
        for (record, reason) in unconverted {
            self.report.failed += 1;
            self.report.destination.failed += 1;
            let doc = ConversionErrorDocument {
                attempts_made: 1,
                arrival_timestamp: arrival_ms,
                last_error_code: FORMAT_CONVERSION_CODE.to_owned(),
                last_error_message: reason,
                attempt_ending_timestamp: self.task.clock.now_ms(),
                raw_data: base64::engine::general_purpose::STANDARD.encode(&record),
                sequence_number: None,
                sub_sequence_number: None,
                data_catalog_table: table.clone(),
            };
            self.write_error(FORMAT_CONVERSION_FAILED, doc.to_line(), arrival_ms);
        }
    }

    /// A delivered record without the newline kpipe appends.
    pub(super) fn record_of<'d>(&self, data: &'d [u8]) -> &'d [u8] {
        match data {
            [record @ .., b'\n'] if self.task.s3.newline => record,
            _ => data,
        }
    }

    /// The record's partition keys in declaration order: `partitionKeyFromQuery` keys read
    /// with jq from the record as the transform left it, `partitionKeyFromLambda` keys as the
    /// transform returned them. An empty value is refused (kpipe's choice, docs/engine.md).
    pub(super) fn partition_keys(
        &self,
        data: &[u8],
        mut from_lambda: Vec<(&'static str, String)>,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let specs = self.task.s3.partition_keys;
        if specs.is_empty() {
            return Ok(Vec::new());
        }
        let mut keys = Vec::with_capacity(specs.len());
        for (spec, reader) in specs.iter().zip(&self.key_readers) {
            let value = match reader {
                KeyReader::Query(Ok(query)) => query.eval(self.record_of(data))?,
                KeyReader::Query(Err(e)) => return Err(e.clone()),
                KeyReader::Lambda => {
                    let at = from_lambda.iter().position(|(k, _)| *k == spec.name);
                    let Some(at) = at else {
                        return Err(format!(
                            "the transform returned no value for partition key `{}`",
                            spec.name
                        ));
                    };
                    let (_, value) = from_lambda.swap_remove(at);
                    if value.is_empty() {
                        return Err(format!(
                            "the transform returned an empty value for partition key `{}`",
                            spec.name
                        ));
                    }
                    value
                }
            };
            keys.push((spec.name, value));
        }
        Ok(keys)
    }

    /// Whether the objects of a new partition can be stored under the key its values make
    /// (see [`naming::check_key`]): checked once per partition, on a key named as the
    /// partition's first object would be.
    pub(super) fn check_partition(
        &self,
        keys: &[(&'static str, String)],
        arrival_ms: i64,
    ) -> Result<(), String> {
        let time = naming::local_time(arrival_ms, self.task.tz);
        let cx = PrefixContext {
            time: &time,
            keys,
            error_type: None,
        };
        // A throwaway sequence: random parts have a fixed length and alphabet, and the
        // delivery's own sequence must not move.
        let mut ids = Ids::Seeded(0);
        let prefix = naming::object_prefix(self.task.s3, &cx, &mut ids);
        let name = naming::object_name(
            self.task.spec.name,
            DELIVERY_VERSION,
            &time,
            &ids.uuid(),
            naming::extension(self.task.s3),
        );
        naming::check_key(&format!("{prefix}{name}"), self.task.sink.filesystem)
    }

    pub(super) fn write_error(&mut self, error_type: &'static str, line: Vec<u8>, arrival_ms: i64) {
        self.report.error_output.records += 1;
        if !self.error_buffers.contains_key(error_type) {
            let d = self.buffer_deadline();
            self.note_deadline(d);
            self.error_buffers
                .insert(error_type, Buffer::new(arrival_ms, d));
        }
        let buffer = self
            .error_buffers
            .get_mut(error_type)
            .expect("delivery: error buffer was just ensured");
        buffer.data.push(&line);
        buffer.records += 1;
        buffer.oldest_ms = buffer.oldest_ms.min(arrival_ms);
        if buffer.data.len() as u64 >= self.task.s3.buffer.size_bytes {
            let buffer = self
                .error_buffers
                .remove(error_type)
                .expect("delivery: error buffer exists");
            self.flush(buffer, Vec::new(), Output::Error(error_type));
        }
    }

    /// Buffers a source record, as it came, for the backup (`s3_backup`), which is flushed on
    /// its own size-or-interval hints. Firehose writes source records as they are, without a
    /// delimiter.
    pub(super) fn back_up(&mut self, r: &SourceRecord) {
        let Some(backup) = &self.task.backup else {
            return;
        };
        let size = backup.s3.buffer.size_bytes;
        let interval = u64::from(backup.s3.buffer.interval_secs);
        if self.backup_buffer.is_none() {
            let d = Instant::now() + Duration::from_secs(interval);
            self.note_deadline(d);
            self.backup_buffer = Some(Buffer::new(r.arrival_ms, d));
        }
        let buffer = self
            .backup_buffer
            .as_mut()
            .expect("delivery: backup buffer was just ensured");
        buffer.data.push(&r.data);
        buffer.records += 1;
        buffer.oldest_ms = buffer.oldest_ms.min(r.arrival_ms);
        if buffer.data.len() as u64 >= size {
            let buffer = self
                .backup_buffer
                .take()
                .expect("delivery: backup buffer exists");
            self.flush(buffer, Vec::new(), Output::Backup);
        }
    }

    /// Names the object and hands compression and the write to a task of their own, so the
    /// next records are processed meanwhile (the second core compresses).
    pub(super) fn flush(
        &mut self,
        buffer: Buffer,
        keys: Vec<(&'static str, String)>,
        output: Output,
    ) {
        let (s3, sink) = match (&self.task.backup, output) {
            (Some(b), Output::Backup) => (b.s3, &b.sink),
            _ => (self.task.s3, &self.task.sink),
        };
        // The backup is a plain S3 destination: UTC times (it takes no time zone).
        let tz = if output == Output::Backup {
            None
        } else {
            self.task.tz
        };
        let time = naming::local_time(buffer.oldest_ms, tz);
        let error_type = match output {
            Output::Error(t) => Some(t),
            _ => None,
        };
        let cx = PrefixContext {
            time: &time,
            keys: &keys,
            error_type,
        };
        let prefix = match output {
            Output::Data | Output::Backup => naming::object_prefix(s3, &cx, &mut self.task.ids),
            Output::Error(_) => naming::error_prefix(s3, &cx, &mut self.task.ids),
        };
        // Error documents are written uncompressed, so they can be read as they are.
        let (compression, ext) = match output {
            Output::Data | Output::Backup => (s3.compression, naming::extension(s3)),
            Output::Error(_) => (Compression::None, ""),
        };
        let converter = match output {
            Output::Data => self.task.conversion.as_ref().map(|(c, _)| Arc::clone(c)),
            _ => None,
        };
        let uuid = self.task.ids.uuid();
        let name = naming::object_name(self.task.spec.name, DELIVERY_VERSION, &time, &uuid, ext);
        let key = if sink.bucket_in_key {
            format!("{}/{prefix}{name}", s3.bucket)
        } else {
            format!("{prefix}{name}")
        };
        let store = Arc::clone(&sink.store);
        let mut records = buffer.records;
        let oldest_ms = buffer.oldest_ms;
        let bytes_in = buffer.bytes();
        self.writing_bytes += bytes_in;
        let deadline = Instant::now() + self.task.write_deadline;
        self.writes.spawn(async move {
            let entry = name.clone();
            let mut unconverted = Vec::new();
            let packed = match converter {
                Some(c) => Ok(c
                    .finish(buffer.groups, buffer.data, buffer.lens)
                    .await
                    .map(|c| (c.body, c.rows, c.failures))
                    .map_err(std::io::Error::other)),
                None => {
                    tokio::task::spawn_blocking(move || {
                        compress(buffer.data, compression, &entry)
                            .map(|b| (Some(b), records, Vec::new()))
                    })
                    .await
                }
            };
            let packed = match packed {
                Ok(Ok((body, rows, failures))) => {
                    records = rows;
                    unconverted = failures;
                    Ok(Ok(body))
                }
                Ok(Err(e)) => Ok(Err(e)),
                Err(e) => Err(e),
            };
            let (bytes_out, result) = match packed {
                // Every record failed conversion: no object.
                Ok(Ok(None)) => (0, Ok(())),
                Ok(Ok(Some(body))) => {
                    let bytes_out = body.content_length() as u64;
                    // The key as it is, never percent-encoded (`Path::from` would encode
                    // `#`, `~` and non-ASCII, which Firehose writes as they are).
                    match StorePath::parse(&key) {
                        Ok(path) => (bytes_out, put_until(&*store, &path, body, deadline).await),
                        Err(e) => (bytes_out, Err(format!("the key cannot be stored: {e}"))),
                    }
                }
                Ok(Err(e)) => (0, Err(format!("compression failed: {e}"))),
                Err(e) => (0, Err(format!("compression task failed: {e}"))),
            };
            Written {
                key,
                records,
                bytes_in,
                bytes_out,
                output,
                result,
                unconverted,
                oldest_ms,
            }
        });
    }

    pub(super) fn on_written(&mut self, done: Result<Written, tokio::task::JoinError>) {
        let mut w = match done {
            Ok(w) => w,
            Err(e) => {
                // The write task cannot panic (the store is called under catch_unwind); if it
                // died anyway, what it held is not known to be stored.
                let reason = format!("an object write task failed: {e}");
                self.report.errors.push(reason.clone());
                self.undelivered_reason.get_or_insert(reason);
                return;
            }
        };
        self.writing_bytes = self.writing_bytes.saturating_sub(w.bytes_in);
        let unconverted = std::mem::take(&mut w.unconverted);
        if !unconverted.is_empty() {
            self.fail_conversion(unconverted, w.oldest_ms);
        }
        match (&w.result, w.output) {
            // A buffer none of whose records converted makes no object.
            (Ok(()), Output::Data) if w.records == 0 => {}
            (Ok(()), Output::Backup) => {
                if let Some(b) = &mut self.report.backup {
                    b.records += w.records;
                    b.objects += 1;
                    b.bytes_out += w.bytes_out;
                }
            }
            (Err(e), Output::Backup) => {
                // The records were delivered; their backup copy was not stored.
                let reason = format!(
                    "the backup of {} source records could not be written to {}: {e}",
                    w.records, w.key
                );
                tracing::error!("{reason}");
                if let Some(b) = &mut self.report.backup {
                    b.undelivered += w.records;
                }
                self.backup_failed.get_or_insert_with(|| reason.clone());
                self.report.errors.push(reason);
            }
            (Ok(()), Output::Data) => {
                self.report.delivered += w.records;
                self.report.destination.delivered += w.records;
                self.report.destination.objects += 1;
                self.report.destination.bytes_in += w.bytes_in;
                self.report.destination.bytes_out += w.bytes_out;
                tracing::debug!(key = %w.key, records = w.records, "object written");
                self.report.objects.push(w.key);
            }
            (Ok(()), Output::Error(_)) => {
                self.report.error_output.objects += 1;
                self.report.error_objects.push(w.key);
            }
            (Err(e), output) => {
                let error_type = match output {
                    Output::Error(t) => Some(t),
                    _ => None,
                };
                // Nothing is lost silently: the object's records are undelivered (not
                // failed: failed records have an error document), with the reason.
                let reason = match error_type {
                    None => format!(
                        "{} records could not be written to {}: {e}",
                        w.records, w.key
                    ),
                    Some(_) => format!(
                        "{} error documents could not be written to {}: {e}",
                        w.records, w.key
                    ),
                };
                tracing::error!("{reason}");
                if error_type.is_some() {
                    // They were counted as failed when their error document was made.
                    self.report.error_output.lost_in_write += w.records;
                    self.report.failed -= w.records;
                } else {
                    self.report.destination.undelivered += w.records;
                }
                self.report.undelivered += w.records;
                self.undelivered_reason
                    .get_or_insert_with(|| reason.clone());
                self.report.errors.push(reason);
            }
        }
    }

    /// A flush's answer: an error once any object this delivery made was not stored (then no
    /// checkpoint may pass what it read).
    pub(super) fn flushed(&self) -> Result<(), String> {
        match (&self.undelivered_reason, &self.backup_failed) {
            (None, None) => Ok(()),
            (Some(reason), _) => Err(format!(
                "delivery {}: {} records undelivered ({reason})",
                self.task.spec.name, self.report.undelivered
            )),
            (None, Some(reason)) => Err(format!(
                "delivery {}: {} source records not backed up ({reason})",
                self.task.spec.name,
                self.report.backup.as_ref().map_or(0, |b| b.undelivered)
            )),
        }
    }
}

/// Writes one object, retrying with backoff until it is stored or `deadline` passes: an
/// error, a panic in the store, or an attempt without an answer for [`ATTEMPT_TIMEOUT`] is
/// a failed attempt. Firehose retries S3 delivery for up to 24 hours, or for a Kinesis source
/// until the stream's retention ends ("Handle data delivery failure",
/// <https://docs.aws.amazon.com/firehose/latest/dev/retry.html>); locally the deadline is
/// [`LocalBuilder::write_deadline`](crate::engine::LocalBuilder::write_deadline).
pub(crate) async fn put_until(
    store: &dyn object_store::ObjectStore,
    path: &StorePath,
    body: object_store::PutPayload,
    deadline: Instant,
) -> Result<(), String> {
    let mut delay = FIRST_RETRY;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        let limit = ATTEMPT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let attempt = CatchUnwind(Box::pin(store.put(path, body.clone())));
        let error = match tokio::time::timeout(limit.max(FIRST_RETRY), attempt).await {
            Ok(Ok(Ok(_))) => return Ok(()),
            Ok(Ok(Err(e))) => e.to_string(),
            Ok(Err(panic)) => format!("the object store panicked: {panic}"),
            Err(_) => format!("no answer from the object store within {limit:?}"),
        };
        if Instant::now() + delay > deadline {
            return Err(format!("{error} (gave up after {attempts} attempts)"));
        }
        tracing::warn!(key = %path, attempt = attempts, %error, "object write failed; retrying in {delay:?}");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY_INTERVAL);
    }
}
