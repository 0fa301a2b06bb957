//! Processing one invocation's records: in batches, as the event is read, on the threads the
//! function has; then the answers in event order, within Lambda's 6 MB.
//!
//! The thread that reads the event hands batches of records to worker threads as it goes, so
//! they start on the first records while the rest of the event is still being read; when the
//! reading is done it takes batches too. Each batch is answered into a buffer of its own; the
//! response is those buffers in order. With one thread there are no workers and the records
//! are answered straight into the response as they are read.
//!
//! A record waiting on an async transform stops its batch there; after the threads are done,
//! such batches go on in event order on the caller's task, each waiting record awaited in
//! turn.

use super::MAX_RESPONSE_BYTES;
use super::aggregate::aggregated;
use super::response::{Answers, ResponseText, Style};
use crate::pipeline::{Appended, BoxFuture, RecordProcessor, RecordResult};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

/// Event data per batch: small enough that workers start while the event is still being read
/// and share the work evenly, large enough that handing a batch over costs little.
const BATCH_BYTES: usize = 64 * 1024;

/// Below this much event data per thread, another thread costs more than it saves.
const MIN_BYTES_PER_THREAD: usize = 256 * 1024;

/// How many worker threads, besides the caller's, are worth it for `bytes` of event.
pub(super) fn workers(threads: usize, bytes: usize) -> usize {
    (threads.max(1) - 1).min((bytes / MIN_BYTES_PER_THREAD).saturating_sub(1))
}

/// A record as the handler reads it: borrowed from the event where it can be.
pub(super) struct Record<'a> {
    pub(super) id: Cow<'a, str>,
    /// The id needs no escaping in JSON (known from how it was read).
    pub(super) plain_id: bool,
    /// Base64.
    pub(super) data: Cow<'a, str>,
}

/// Which delivery's processor answers the records.
pub(super) enum Route {
    /// Known.
    To(Arc<dyn RecordProcessor>),
    /// Known once the event's `deliveryStreamArn` is read.
    Unknown,
    /// The event's delivery stream does not use this transform: every record fails.
    Nowhere(String),
}

/// A batch for a worker: its place in the event, its processor, its records.
type Job<'a> = (usize, Arc<dyn RecordProcessor>, Vec<Record<'a>>);

/// Takes the records of one event as they are read and has them answered.
pub(super) struct Feeder<'a> {
    style: Style,
    route: Route,
    /// Envelopes of every record read, reserved in the 6 MB (see [`Style::envelope`]).
    reserved: usize,
    batch: Vec<Record<'a>>,
    batch_bytes: usize,
    /// Batches read but not yet sent: all of them until the route is known.
    held: Vec<Vec<Record<'a>>>,
    mode: Mode<'a>,
}

enum Mode<'a> {
    /// One thread: every record answered on this one, straight into the response.
    Inline(Chunk<'a>),
    /// Batches sent to workers (and taken back by this thread once reading is done).
    Pool {
        jobs: Option<Sender<Job<'a>>>,
        sent: usize,
        /// Batches this thread answered.
        done: Vec<(usize, Chunk<'a>)>,
    },
}

impl<'a> Feeder<'a> {
    /// `capacity`: about the response's size; `records`: about how many records there are.
    /// `jobs`: where batches go, when there are workers.
    pub(super) fn new(
        style: Style,
        route: Route,
        capacity: usize,
        records: usize,
        jobs: Option<Sender<Job<'a>>>,
    ) -> Self {
        let mode = match jobs {
            None => {
                // One chunk holds every record: room for them made once.
                let mut chunk = Chunk::new(Answers::response(capacity, style));
                chunk.records.reserve(records);
                chunk.spans.reserve(records);
                Mode::Inline(chunk)
            }
            Some(jobs) => Mode::Pool {
                jobs: Some(jobs),
                sent: 0,
                done: Vec::new(),
            },
        };
        Feeder {
            style,
            route,
            reserved: 0,
            batch: Vec::new(),
            batch_bytes: 0,
            held: Vec::new(),
            mode,
        }
    }

    /// Sets the route from the event's `deliveryStreamArn`, when it was not known.
    pub(super) fn route(&mut self, route: impl FnOnce() -> Route) {
        if matches!(self.route, Route::Unknown) {
            self.route = route();
        }
    }

    /// One more record, in event order.
    pub(super) fn push(&mut self, record: Record<'a>) {
        self.reserved += self.style.envelope(&record.id, record.plain_id);
        self.batch_bytes += record.data.len();
        self.batch.push(record);
        if self.batch_bytes >= BATCH_BYTES {
            self.flush();
        }
    }

    /// The batch read so far joins those held; once the route is known, they all go.
    fn flush(&mut self) {
        self.batch_bytes = 0;
        if !self.batch.is_empty() {
            // The next batch is about as long as this one.
            let next = Vec::with_capacity(self.batch.len());
            self.held.push(std::mem::replace(&mut self.batch, next));
        }
        if let Route::To(processor) = &self.route {
            let processor = Arc::clone(processor);
            for held in std::mem::take(&mut self.held) {
                self.dispatch(&processor, held);
            }
        }
    }

    fn dispatch(&mut self, processor: &Arc<dyn RecordProcessor>, mut batch: Vec<Record<'a>>) {
        match &mut self.mode {
            Mode::Inline(chunk) => {
                chunk.records.append(&mut batch);
                chunk.run(processor);
            }
            Mode::Pool { jobs, sent, done } => {
                let job = (*sent, Arc::clone(processor), batch);
                *sent += 1;
                let unsent = match jobs {
                    Some(jobs) => jobs.send(job).err().map(|e| e.0),
                    None => Some(job),
                };
                // No worker left to take it (they only stop when told to): answer it here.
                if let Some((seq, processor, records)) = unsent {
                    done.push((seq, Chunk::answer(records, &processor, self.style)));
                }
            }
        }
    }

    /// After the last record: the batches still here are sent, and this thread takes its
    /// share of the queue until it is empty.
    pub(super) fn finish(mut self, queue: Option<&Mutex<Receiver<Job<'a>>>>) -> Finished<'a> {
        if matches!(self.route, Route::Unknown) {
            self.route = Route::Nowhere("the event names no delivery stream".into());
        }
        self.flush();
        let budget = MAX_RESPONSE_BYTES.saturating_sub(16 + self.reserved);
        let style = self.style;
        // Records held for a route that never came fail, each with the reason.
        let unrouted = match &self.route {
            Route::Nowhere(why) => {
                let mut chunk = Chunk::new(Answers::part(0, style));
                chunk.records.extend(self.held.drain(..).flatten());
                chunk.fail_rest(why);
                Some(chunk)
            }
            _ => None,
        };
        let (mut chunks, mut expected) = match self.mode {
            Mode::Inline(chunk) => (vec![(0, chunk)], 1),
            Mode::Pool {
                jobs,
                mut done,
                sent,
            } => {
                // Closing the queue lets the workers stop once it is empty.
                drop(jobs);
                if let Some(queue) = queue {
                    done.extend(work(queue, style));
                }
                (done, sent)
            }
        };
        if let Some(chunk) = unrouted {
            chunks.push((usize::MAX, chunk));
            expected += 1;
        }
        Finished {
            chunks,
            expected,
            route: self.route,
            budget,
            envelopes: 16 + self.reserved,
        }
    }
}

/// What [`Feeder::finish`] leaves: answered chunks (more come from the workers), how many
/// there should be in all, the route, and the bytes the 6 MB leaves for outputs.
pub(super) struct Finished<'a> {
    pub(super) chunks: Vec<(usize, Chunk<'a>)>,
    expected: usize,
    pub(super) route: Route,
    budget: usize,
    /// The bytes of the response with every record failed: the least it can be.
    envelopes: usize,
}

impl Finished<'_> {
    /// The least bytes the response takes, when that is more than Lambda returns.
    pub(super) fn too_large(&self) -> Option<usize> {
        (self.envelopes > MAX_RESPONSE_BYTES).then_some(self.envelopes)
    }

    /// The response, once every chunk is here: records waiting on an async transform are
    /// awaited in event order, then the answers are assembled. `None` if a chunk is missing
    /// (a worker thread died: a bug), in which case the invocation has to fail.
    pub(super) async fn respond(mut self, style: Style) -> Option<ResponseText> {
        if self.chunks.len() != self.expected {
            return None;
        }
        self.chunks.sort_by_key(|(seq, _)| *seq);
        if let Route::To(processor) = &self.route {
            for (_, chunk) in &mut self.chunks {
                chunk.finish(processor).await;
            }
        }
        let chunks = self.chunks.into_iter().map(|(_, chunk)| chunk).collect();
        Some(assemble(chunks, self.budget, style))
    }
}

/// A worker: answers batches from the queue until it is closed and empty.
pub(super) fn work<'a>(queue: &Mutex<Receiver<Job<'a>>>, style: Style) -> Vec<(usize, Chunk<'a>)> {
    let mut done = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(jobs) => jobs.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok((seq, processor, records)) = job else {
            return done;
        };
        done.push((seq, Chunk::answer(records, &processor, style)));
    }
}

/// Where one record's answer is, and what its output costs if it is `Ok`.
struct Span {
    answer: Range<usize>,
    /// Bytes the output adds to the envelope, for an `Ok` answer.
    cost: Option<usize>,
}

/// Records and their answers.
pub(super) struct Chunk<'a> {
    records: Vec<Record<'a>>,
    /// The next record to process.
    next: usize,
    /// The future of record `next - 1`, waiting on an async transform.
    waiting: Option<BoxFuture<RecordResult>>,
    answers: Answers,
    spans: Vec<Span>,
    /// Decoded input and output, reused for every record.
    input: Vec<u8>,
    output: Vec<u8>,
}

impl<'a> Chunk<'a> {
    fn new(answers: Answers) -> Self {
        Chunk {
            records: Vec::new(),
            next: 0,
            waiting: None,
            answers,
            spans: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    /// A batch answered into a buffer of its own.
    fn answer(
        records: Vec<Record<'a>>,
        processor: &Arc<dyn RecordProcessor>,
        style: Style,
    ) -> Self {
        let capacity = records.iter().map(|r| r.data.len() + r.id.len() + 64).sum();
        let mut chunk = Chunk::new(Answers::part(capacity, style));
        chunk.records = records;
        chunk.run(processor);
        chunk
    }

    /// Processes records until one waits on an async transform (kept in `waiting`) or none
    /// are left. A panic here (not the user's function: its panics fail its record) would be
    /// a bug; it fails the chunk's records rather than the invocation.
    fn run(&mut self, processor: &Arc<dyn RecordProcessor>) {
        if let Err(message) = crate::pipeline::guard::guard(|| self.run_unguarded(processor)) {
            self.fail_all(&format!("internal error: {message}"));
        }
    }

    fn run_unguarded(&mut self, processor: &Arc<dyn RecordProcessor>) {
        while self.waiting.is_none() && self.next < self.records.len() {
            let i = self.next;
            self.next += 1;
            self.input.clear();
            self.output.clear();
            // Decode base64 per record: a bad record fails alone. Each record goes through
            // the same processor as in the local engine (`process_into`, as the engine's
            // in-process transform calls it).
            let data = &self.records[i].data;
            let appended = match super::base64::decode_append(data.as_bytes(), &mut self.input) {
                Ok(()) => match crate::kpl::user_records(&self.input) {
                    Some(subs) => aggregated(processor, subs, &mut self.output),
                    None => processor.process_into(&self.input, &mut self.output),
                },
                Err(e) => Appended::Failed(format!("not valid base64: {e}")),
            };
            match appended {
                Appended::Ok(keys) => {
                    let output = std::mem::take(&mut self.output);
                    self.ok(i, &output, &keys);
                    self.output = output;
                }
                Appended::Dropped => self.not_ok(i, "Dropped", None),
                Appended::Failed(message) => self.not_ok(i, "ProcessingFailed", Some(&message)),
                Appended::Pending(future) => self.waiting = Some(future),
            }
        }
    }

    /// Awaits the records waiting on an async transform, in order, and answers the rest.
    pub(super) async fn finish(&mut self, processor: &Arc<dyn RecordProcessor>) {
        while let Some(future) = self.waiting.take() {
            let i = self.next - 1;
            match future.await {
                RecordResult::Ok {
                    data,
                    partition_keys,
                } => self.ok(i, &data, &partition_keys),
                RecordResult::Dropped => self.not_ok(i, "Dropped", None),
                RecordResult::Failed(message) => {
                    self.not_ok(i, "ProcessingFailed", Some(&message));
                }
            }
            self.run(processor);
        }
    }

    fn ok(&mut self, i: usize, data: &[u8], keys: &[(&'static str, String)]) {
        let r = &self.records[i];
        let cost = self.answers.style().output_cost(data.len(), keys);
        let answer = self.answers.write(&r.id, r.plain_id, "Ok", data, keys);
        self.spans.push(Span {
            answer,
            cost: Some(cost),
        });
    }

    /// A `Dropped` or `ProcessingFailed` answer; a failure is logged with its reason.
    fn not_ok(&mut self, i: usize, result: &'static str, failure: Option<&str>) {
        let r = &self.records[i];
        if let Some(message) = failure {
            log_failure(&r.id, message);
        }
        let answer = self.answers.write(&r.id, r.plain_id, result, &[], &[]);
        self.spans.push(Span { answer, cost: None });
    }

    /// Fails every record not answered yet.
    fn fail_rest(&mut self, message: &str) {
        self.waiting = None;
        while self.next < self.records.len() {
            self.next += 1;
            self.not_ok(self.next - 1, "ProcessingFailed", Some(message));
        }
    }

    /// Fails every record of the chunk, answered or not.
    fn fail_all(&mut self, message: &str) {
        self.answers.clear();
        self.spans.clear();
        self.next = 0;
        self.fail_rest(message);
    }
}

/// Failed records logged one line each per invocation; the others are counted in one line
/// (an event of 10,000 bad records would otherwise write 10,000 lines to CloudWatch Logs).
const LOGGED_FAILURES: usize = 10;

/// Failed records of the invocation under way (Lambda runs one at a time per process).
static FAILURES: AtomicUsize = AtomicUsize::new(0);

fn log_failure(id: &str, message: &str) {
    if FAILURES.fetch_add(1, Ordering::Relaxed) < LOGGED_FAILURES {
        eprintln!("kpipe: record {id} failed: {message}");
    }
}

/// Ends the invocation's failure log: how many failures were not shown.
pub(super) fn end_failure_log() {
    let failed = FAILURES.swap(0, Ordering::Relaxed);
    if failed > LOGGED_FAILURES {
        eprintln!(
            "kpipe: {failed} records failed in this invocation; the first {LOGGED_FAILURES} \
             are shown above"
        );
    }
}

/// The response from the chunks' answers, in order. Outputs are paid from `budget` in record
/// order; when one does not fit, its record is answered `ProcessingFailed` instead.
fn assemble(chunks: Vec<Chunk<'_>>, budget: usize, style: Style) -> ResponseText {
    let total: usize = chunks
        .iter()
        .flat_map(|c| &c.spans)
        .filter_map(|s| s.cost)
        .sum();
    if total <= budget {
        // Everything fits (the usual case): the answers as they are, in order, each chunk's
        // buffer a piece of the response.
        return Answers::join(chunks.into_iter().map(|c| c.answers));
    }
    let size: usize = chunks.iter().map(|c| c.answers.text().len() + 1).sum();
    let mut budget = budget;
    let mut response = Answers::response(size + 16, style);
    for chunk in &chunks {
        for (span, r) in chunk.spans.iter().zip(&chunk.records) {
            match span.cost {
                Some(cost) if cost > budget => {
                    log_failure(&r.id, "its output does not fit in Lambda's 6 MB response");
                    response.write(&r.id, r.plain_id, "ProcessingFailed", &[], &[]);
                }
                cost => {
                    budget -= cost.unwrap_or(0);
                    response.copy(&chunk.answers.text()[span.answer.clone()]);
                }
            }
        }
    }
    response.finish()
}

#[cfg(test)]
mod tests {
    use super::workers;

    #[test]
    fn workers_are_worth_their_thread() {
        let kib = 1024;
        assert_eq!(workers(1, 6 * kib * kib), 0);
        assert_eq!(workers(2, 6 * kib * kib), 1);
        assert_eq!(workers(6, 6 * kib * kib), 5);
        assert_eq!(workers(6, 600 * kib), 1);
        assert_eq!(workers(2, 300 * kib), 0);
        assert_eq!(workers(0, 0), 0);
    }
}
