//! The transform stage of a delivery: batches by the processor's size-or-interval hints,
//! invocations with retries, and the invoker that runs the delivery's own processor.

use super::{PROCESSING_FAILED, State};
use crate::engine::parallel;
use crate::engine::stream::SourceRecord;
use crate::firehose::{self, BatchRecord, ErrorDocument, Invoker};
use crate::pipeline::guard::CatchUnwind;
use crate::pipeline::{Appended, RecordProcessor, RecordResult};
use std::collections::HashMap;
use std::sync::Arc;

impl State {
    /// Invokes the transform with the current batch, retrying a failed invocation
    /// `retries` times (Amazon Data Firehose, Handle failure in data transformation: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>).
    pub(super) async fn invoke(&mut self) {
        // The next batch is likely as long as this one: room for it at once, no regrowth.
        let capacity = self.batch.len();
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(capacity));
        self.batch_bytes = 0;
        self.batch_deadline = None;
        if batch.is_empty() {
            return;
        }
        let Some((spec, invoker)) = self.task.transform.clone() else {
            return;
        };
        self.tr.received += batch.len() as u64;
        if let Some(processor) = invoker.in_process() {
            self.tr.invocations += 1;
            return self.run_in_process(processor, batch).await;
        }
        // Firehose derives record ids from the source record; so does kpipe (lineage).
        let batch: Vec<BatchRecord> = batch
            .into_iter()
            .map(|r| BatchRecord {
                record_id: super::record_id(r.shard, r.sequence, r.subsequence),
                arrival_ms: r.arrival_ms,
                data: r.data,
            })
            .collect();
        let mut attempts = 0u32;
        let outcome = loop {
            attempts += 1;
            self.tr.invocations += 1;
            // An invoker that panics is an invocation that failed (Lambda.FunctionError),
            // retried like any other, never the end of the delivery.
            let call = async { invoker.invoke(&batch).await };
            let result = match CatchUnwind(Box::pin(call)).await {
                Ok(Ok(response)) => {
                    firehose::validate_response(&batch, &response).map(|()| response)
                }
                Ok(Err(e)) => Err(e),
                Err(panic) => Err(firehose::InvocationError::FunctionError(format!(
                    "the invocation panicked: {panic}"
                ))),
            };
            match result {
                Ok(response) => break Ok(response),
                Err(e) => {
                    self.tr.failed_invocations += 1;
                    tracing::warn!(delivery = self.task.spec.name, attempt = attempts, error = %e, "transform invocation failed");
                    if attempts > spec.retries {
                        break Err(e);
                    }
                }
            }
        };
        let now = self.task.clock.now_ms();
        match outcome {
            Ok(response) => {
                // Results in request order (validate_response guarantees every id once).
                let in_order = response
                    .iter()
                    .zip(&batch)
                    .all(|(r, b)| r.record_id == b.record_id);
                let results: Vec<Option<RecordResult>> = if in_order {
                    response.into_iter().map(|r| Some(r.result)).collect()
                } else {
                    let mut by_id: HashMap<String, RecordResult> = response
                        .into_iter()
                        .map(|r| (r.record_id, r.result))
                        .collect();
                    batch.iter().map(|b| by_id.remove(&b.record_id)).collect()
                };
                for (rec, result) in batch.iter().zip(results) {
                    match result {
                        Some(result) => {
                            self.on_result(result, &rec.data, rec.arrival_ms, attempts, now)
                        }
                        // validate_response guarantees every id is answered.
                        None => self.fail_transform(
                            &rec.data,
                            rec.arrival_ms,
                            attempts,
                            "Lambda.MissingRecordId",
                            "no result".into(),
                            now,
                        ),
                    }
                }
            }
            Err(e) => {
                for rec in &batch {
                    self.fail_transform(
                        &rec.data,
                        rec.arrival_ms,
                        attempts,
                        e.code(),
                        e.to_string(),
                        now,
                    );
                }
            }
        }
    }

    /// A batch through an in-process transform ([`Invoker::in_process`]): the records are
    /// processed on as many threads as pay off, each part into one buffer, then delivered in
    /// order from those buffers. What each record becomes is what one invocation of
    /// [`LocalInvoker`] makes of it.
    async fn run_in_process(
        &mut self,
        processor: &Arc<dyn RecordProcessor>,
        batch: Vec<SourceRecord>,
    ) {
        let parts = process_in_parts(processor, &batch);
        let now = self.task.clock.now_ms();
        // Without partitions or conversion every output goes to the one buffer: a part whose
        // outputs fit in it goes there whole, its buffer becoming the object's next chunk.
        let one_buffer = self.task.s3.partition_keys.is_empty() && self.task.conversion.is_none();
        let mut records = batch.iter();
        for part in parts {
            // Whole: every output of the part goes in at once, after the loop.
            let whole = one_buffer && !part.pending && self.fits_whole(part.out.len());
            let (mut start, mut delivered, mut oldest_ms) = (0, 0u64, i64::MAX);
            for answer in part.answers {
                let rec = records.next().expect("transform: one answer per record");
                match answer {
                    Answer::Ok { .. } if whole => {
                        delivered += 1;
                        oldest_ms = oldest_ms.min(rec.arrival_ms);
                    }
                    Answer::Ok { end, keys } => {
                        self.tr.ok += 1;
                        self.deliver_record(&part.out[start..end], keys, rec.arrival_ms);
                        start = end;
                    }
                    Answer::Dropped => {
                        self.on_result(RecordResult::Dropped, &rec.data, rec.arrival_ms, 1, now)
                    }
                    Answer::Failed(m) => {
                        self.on_result(RecordResult::Failed(m), &rec.data, rec.arrival_ms, 1, now)
                    }
                    Answer::Pending(future) => {
                        // An async transform: awaited here, in order, like the invocation would.
                        let result = future.await;
                        self.on_result(result, &rec.data, rec.arrival_ms, 1, now);
                    }
                }
            }
            if whole {
                self.tr.ok += delivered;
                self.deliver_whole(part.out, delivered, oldest_ms);
            }
        }
    }

    /// What an invocation answered for one record.
    fn on_result(
        &mut self,
        result: RecordResult,
        data: &[u8],
        arrival_ms: i64,
        attempts: u32,
        now: i64,
    ) {
        match result {
            RecordResult::Ok {
                data,
                partition_keys,
            } => {
                self.tr.ok += 1;
                self.deliver_record(&data, partition_keys, arrival_ms);
            }
            RecordResult::Dropped => {
                self.tr.dropped += 1;
                self.report.dropped += 1;
            }
            RecordResult::Failed(message) => {
                self.fail_transform(
                    data,
                    arrival_ms,
                    attempts,
                    firehose::PROCESSING_FAILED_CODE,
                    message,
                    now,
                );
            }
        }
    }

    pub(super) fn fail_transform(
        &mut self,
        data: &[u8],
        arrival_ms: i64,
        attempts: u32,
        code: &str,
        message: String,
        now: i64,
    ) {
        self.tr.failed += 1;
        self.report.failed += 1;
        let doc = ErrorDocument::new(
            data,
            arrival_ms,
            attempts,
            code,
            message,
            now,
            self.task.lambda_arn.clone(),
        );
        self.write_error(PROCESSING_FAILED, doc.to_line(), arrival_ms);
    }
}

/// Source bytes per thread below which another thread costs more than it saves.
const MIN_BYTES_PER_THREAD: usize = 256 * 1024;

/// Parts a thread takes at most ([`process_in_parts`]).
const PARTS_PER_THREAD: usize = 4;

/// Source bytes per part at least: a part's output at least this large becomes a chunk of
/// the object as it is (`Chunks::push_owned`), without a copy.
const MIN_BYTES_PER_PART: usize = 256 * 1024;

/// What became of one record of a part ([`process_in_parts`]).
enum Answer {
    /// Its output ends at `end` in the part's buffer (and starts where the previous `Ok`
    /// output ended).
    Ok {
        end: usize,
        keys: Vec<(&'static str, String)>,
    },
    Dropped,
    Failed(String),
    /// Waiting on an async transform.
    Pending(crate::pipeline::BoxFuture<RecordResult>),
}

/// Consecutive records processed on one thread: their outputs back to back in one buffer.
struct Part {
    out: Vec<u8>,
    answers: Vec<Answer>,
    /// Some answer is [`Answer::Pending`].
    pending: bool,
}

fn process_part(processor: &dyn RecordProcessor, records: &[SourceRecord]) -> Part {
    let bytes: usize = records.iter().map(|r| r.data.len()).sum();
    // Outputs are usually about as large as their inputs: one allocation, rarely regrown.
    let mut out = Vec::with_capacity(bytes + bytes / 8);
    let mut pending = false;
    let answers = records
        .iter()
        .map(|r| match processor.process_into(&r.data, &mut out) {
            Appended::Ok(keys) => Answer::Ok {
                end: out.len(),
                keys,
            },
            Appended::Dropped => Answer::Dropped,
            Appended::Failed(m) => Answer::Failed(m),
            Appended::Pending(future) => {
                pending = true;
                Answer::Pending(future)
            }
        })
        .collect();
    Part {
        out,
        answers,
        pending,
    }
}

/// Processes `records` in consecutive parts on as many threads as pay off (the machine's
/// cores, at least [`MIN_BYTES_PER_THREAD`] each), this one included. There are a few parts
/// per thread, each thread taking the next one when done, so a thread that shares its core
/// with another (a producer) holds the batch up less.
fn process_in_parts(processor: &Arc<dyn RecordProcessor>, records: &[SourceRecord]) -> Vec<Part> {
    let bytes: usize = records.iter().map(|r| r.data.len()).sum();
    let threads = parallel::cores().min(bytes / MIN_BYTES_PER_THREAD).max(1);
    let parts = if threads == 1 {
        1
    } else {
        (PARTS_PER_THREAD * threads).min(bytes / MIN_BYTES_PER_PART)
    };
    let per = records.len().div_ceil(parts).max(1);
    parallel::map_on_threads(records.chunks(per).collect(), threads, |part| {
        process_part(&**processor, part)
    })
}

/// The invoker that runs a delivery's own record processor: the transform as the generated
/// Lambda handler runs it.
pub struct LocalInvoker {
    processor: Arc<dyn RecordProcessor>,
}

impl LocalInvoker {
    /// Runs batches through this processor (from [`DeliveryDef::processor`](crate::DeliveryDef::processor)).
    pub fn new(processor: Arc<dyn RecordProcessor>) -> Self {
        LocalInvoker { processor }
    }
}

impl std::fmt::Debug for LocalInvoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LocalInvoker")
    }
}

impl Invoker for LocalInvoker {
    fn invoke<'a>(&'a self, records: &'a [BatchRecord]) -> firehose::InvokeFuture<'a> {
        Box::pin(async move { Ok(firehose::invoke_batch(&*self.processor, records).await) })
    }

    fn in_process(&self) -> Option<&Arc<dyn RecordProcessor>> {
        Some(&self.processor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Upper-cases a record, drops `drop…` and fails `fail…`.
    struct Shout;

    impl RecordProcessor for Shout {
        fn process_into(&self, data: &[u8], out: &mut Vec<u8>) -> Appended {
            if data.starts_with(b"drop") {
                return Appended::Dropped;
            }
            if data.starts_with(b"fail") {
                return Appended::Failed(String::from_utf8_lossy(data).into_owned());
            }
            out.extend(data.iter().map(u8::to_ascii_uppercase));
            Appended::Ok(vec![("n", data.len().to_string())])
        }
    }

    #[test]
    fn parts_answer_every_record_in_order_as_one_thread_does() {
        // 1.5 MiB: more than one thread's worth on a machine with two cores or more.
        let records: Vec<SourceRecord> = (0..24_000u64)
            .map(|i| {
                let text = match i % 7 {
                    3 => format!("drop record {i:060}"),
                    5 => format!("fail record {i:060}"),
                    _ => format!("keep record {i:060}"),
                };
                SourceRecord::new(bytes::Bytes::from(text), 0, 0, i)
            })
            .collect();
        let processor: Arc<dyn RecordProcessor> = Arc::new(Shout);
        let parts = process_in_parts(&processor, &records);
        if std::thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            assert!(parts.len() > 1, "split across threads");
        }
        let mut records = records.iter();
        for part in &parts {
            let mut start = 0;
            for answer in &part.answers {
                let r = records.next().expect("no more answers than records");
                let text = std::str::from_utf8(&r.data).unwrap();
                match answer {
                    Answer::Ok { end, keys } => {
                        assert_eq!(&part.out[start..*end], text.to_uppercase().as_bytes());
                        assert_eq!(keys, &[("n", text.len().to_string())]);
                        start = *end;
                    }
                    Answer::Dropped => assert!(text.starts_with("drop")),
                    Answer::Failed(m) => assert_eq!(m, text),
                    Answer::Pending(_) => panic!("nothing here is async"),
                }
            }
            assert_eq!(start, part.out.len());
        }
        assert!(records.next().is_none(), "every record answered");
    }
}
