//! The Firehose data-transformation handler of a transform (aws-facts.md §4).
//!
//! One invocation: read the event in place, run every record through the delivery's
//! [`RecordProcessor`] (the local engine's), and write the answers straight into the
//! response's JSON. Large events are cut into contiguous runs of records processed on as many
//! threads as the function's memory buys vCPUs ([`THREADS_VAR`] overrides); the answers keep
//! the event's order, and are byte for byte those of one thread.

use super::response::{Answers, Style};
use super::{LambdaError, MAX_RESPONSE_BYTES};
use crate::pipeline::{Appended, BoxFuture, Pipeline, RecordProcessor, RecordResult};
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::firehose::{KinesisFirehoseResponse, KinesisFirehoseResponseRecord};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

/// The environment variable that sets how many threads one invocation uses (default: one per
/// 1,769 MB of the function's memory, at most the CPUs it sees; outside Lambda, the CPUs).
pub const THREADS_VAR: &str = "KPIPE_LAMBDA_THREADS";

/// Below this much event data per thread, another thread costs more than it saves.
const MIN_BYTES_PER_THREAD: usize = 256 * 1024;

/// The transformation event as Firehose sends it (aws-facts.md §4.1), read leniently: a
/// record's `data` stays a string until the handler decodes it, so one bad record cannot fail
/// the whole invocation.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformationEvent {
    /// `arn:aws:firehose:REGION:ACCOUNT:deliverystream/NAME`.
    #[serde(default)]
    pub delivery_stream_arn: Option<String>,
    /// The records.
    #[serde(default)]
    pub records: Vec<TransformationRecord>,
}

/// One record of a [`TransformationEvent`].
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformationRecord {
    /// The id to echo.
    #[serde(default)]
    pub record_id: String,
    /// Arrival time, epoch milliseconds.
    #[serde(default)]
    pub approximate_arrival_timestamp: i64,
    /// The data, base64.
    #[serde(default)]
    pub data: String,
}

/// The event read in place: ids and data borrowed from the event's bytes (copied only when a
/// string has escapes).
#[derive(Deserialize)]
struct EventView<'a> {
    #[serde(default, borrow, rename = "deliveryStreamArn")]
    delivery_stream_arn: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    records: Vec<RecordView<'a>>,
}

#[derive(Deserialize)]
struct RecordView<'a> {
    #[serde(default, borrow, rename = "recordId")]
    record_id: Cow<'a, str>,
    #[serde(default, borrow)]
    data: Cow<'a, str>,
}

/// A record of the event as the handler reads it.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    id: &'a str,
    /// The id needs no escaping in JSON (known from how it was read).
    plain_id: bool,
    /// Base64.
    data: &'a str,
}

/// The Firehose handler of one transform.
#[derive(Clone)]
pub struct FirehoseHandler {
    transform: &'static str,
    /// `(delivery stream name, processor)` for each delivery using the transform.
    deliveries: Vec<(&'static str, Arc<dyn RecordProcessor>)>,
    threads: usize,
}

impl std::fmt::Debug for FirehoseHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirehoseHandler")
            .field("transform", &self.transform)
            .field("threads", &self.threads)
            .finish()
    }
}

/// Memory at which a Lambda function gets one vCPU-second of CPU per second; CPU is allocated in
/// proportion to memory (<https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>).
const MB_PER_VCPU: usize = 1769;

/// How many threads an invocation uses: [`THREADS_VAR`] when it is a positive number; else as
/// many vCPUs' worth of CPU as the function's memory buys (`AWS_LAMBDA_FUNCTION_MEMORY_SIZE`
/// over 1,769 MB, rounded up), at most the CPUs this process sees; outside Lambda, those CPUs.
fn threads_from_env() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    threads_from(
        std::env::var(THREADS_VAR).ok(),
        std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").ok(),
        cpus,
    )
}

fn threads_from(var: Option<String>, memory_mb: Option<String>, cpus: usize) -> usize {
    let default = match memory_mb.and_then(|m| m.trim().parse::<usize>().ok()) {
        // A function sees more CPUs than its memory pays for (two at 128 MB): threads beyond
        // its share of CPU time would only take turns.
        Some(mb) => mb.div_ceil(MB_PER_VCPU).clamp(1, cpus.max(1)),
        None => cpus,
    };
    match var {
        None => default,
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!(
                    "kpipe: {THREADS_VAR}={v:?} is not a positive number of threads; using {default}"
                );
                default
            }
        },
    }
}

impl FirehoseHandler {
    /// The handler of pipeline `P`'s transform `transform_id`. It uses as many threads per
    /// invocation as [`KPIPE_LAMBDA_THREADS`](THREADS_VAR) says, else one per 1,769 MB of the
    /// function's memory (Lambda's vCPU share), at most the CPUs it sees.
    ///
    /// # Errors
    /// [`LambdaError::UnknownTransform`] when no delivery uses that transform.
    pub fn new<P: Pipeline>(transform_id: &str) -> Result<Self, LambdaError> {
        let deliveries: Vec<_> = P::deliveries()
            .into_iter()
            .filter(|d| d.spec().transform == Some(transform_id))
            .map(|d| (d.spec().name, Arc::clone(d.processor())))
            .collect();
        let transform = P::SPEC
            .transform(transform_id)
            .map(|t| t.id)
            .filter(|_| !deliveries.is_empty())
            .ok_or_else(|| LambdaError::UnknownTransform(transform_id.to_owned()))?;
        Ok(FirehoseHandler {
            transform,
            deliveries,
            threads: threads_from_env(),
        })
    }

    /// The same handler using at most `threads` threads per invocation (at least one). One
    /// thread processes the records in order on the caller's thread.
    #[must_use]
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// How many threads an invocation may use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The processor for the delivery stream named in the event's ARN (or the only one).
    fn processor(&self, arn: Option<&str>) -> Option<&Arc<dyn RecordProcessor>> {
        let name = arn
            .and_then(|a| a.rsplit_once("deliverystream/"))
            .map(|(_, n)| n);
        match name.and_then(|n| self.deliveries.iter().find(|(d, _)| *d == n)) {
            Some((_, p)) => Some(p),
            None if self.deliveries.len() == 1 => Some(&self.deliveries[0].1),
            None => None,
        }
    }

    /// Answers one invocation with aws_lambda_events' response type. Its serialisation (which
    /// writes `metadata` on every record) stays within Lambda's 6 MB.
    pub async fn handle(&self, event: TransformationEvent) -> KinesisFirehoseResponse {
        let records: Vec<Incoming<'_>> = event
            .records
            .iter()
            .map(|r| Incoming {
                id: &r.record_id,
                plain_id: false,
                data: &r.data,
            })
            .collect();
        let capacity = records.iter().map(|r| r.data.len() + r.id.len() + 96).sum();
        let json = self
            .answer(
                event.delivery_stream_arn.as_deref(),
                &records,
                Style::Typed,
                capacity,
            )
            .await;
        match serde_json::from_slice(&json) {
            Ok(response) => response,
            Err(e) => {
                // The handler wrote this JSON itself; should it ever not read back, every
                // record is failed rather than the invocation.
                eprintln!("kpipe: internal error reading the response back: {e}");
                let mut response = KinesisFirehoseResponse::default();
                response.records = event
                    .records
                    .into_iter()
                    .map(|r| {
                        let mut a = KinesisFirehoseResponseRecord::default();
                        a.record_id = Some(r.record_id);
                        a.result = Some("ProcessingFailed".to_owned());
                        a.data = Base64Data::default();
                        a
                    })
                    .collect();
                response
            }
        }
    }

    /// Answers one invocation from the event's JSON bytes with the response's JSON bytes: the
    /// path `serve` takes. The event is read in place (ids and data borrowed from the bytes)
    /// and the response written directly, base64 included, without building it as a tree;
    /// `metadata` is written only for records with partition keys.
    ///
    /// # Errors
    /// [`LambdaError::InvalidEvent`] when the bytes are not a Firehose transformation event.
    pub async fn handle_json(&self, event: &[u8]) -> Result<Vec<u8>, LambdaError> {
        // sonic-rs (SIMD) reads the event; ids and data are borrowed from it.
        let view: EventView<'_> =
            sonic_rs::from_slice(event).map_err(|e| LambdaError::InvalidEvent(e.to_string()))?;
        let records: Vec<Incoming<'_>> = view
            .records
            .iter()
            .map(|r| Incoming {
                id: &r.record_id,
                // sonic-rs borrows a string only when it has no escapes, and rejects raw
                // control characters: such an id is written back as it came.
                plain_id: matches!(r.record_id, Cow::Borrowed(_)),
                data: &r.data,
            })
            .collect();
        // The response is about as large as the event; reserve that once.
        Ok(self
            .answer(
                view.delivery_stream_arn.as_deref(),
                &records,
                Style::Raw,
                event.len() + 64,
            )
            .await)
    }

    /// Runs every record through the delivery's processor and answers each, in order, within
    /// Lambda's response limit.
    async fn answer(
        &self,
        arn: Option<&str>,
        records: &[Incoming<'_>],
        style: Style,
        capacity: usize,
    ) -> Vec<u8> {
        let mut response = Answers::response(capacity, style);
        let Some(processor) = self.processor(arn) else {
            eprintln!(
                "kpipe: transform `{}` is not used by delivery stream {arn:?}; failing the batch",
                self.transform
            );
            for r in records {
                response.write(r.id, r.plain_id, "ProcessingFailed", &[], &[]);
            }
            return response.finish();
        };
        // Every record is answered, so each one's envelope (id, result, empty data) is
        // reserved first; outputs and keys are paid from what remains.
        let reserved: usize = 16
            + records
                .iter()
                .map(|r| style.envelope(r.id, r.plain_id))
                .sum::<usize>();
        let budget = MAX_RESPONSE_BYTES.saturating_sub(reserved);

        // Each run of records is processed into answers of its own (the first run straight
        // into the response), in parallel when there are several.
        let mut runs = runs(records, self.threads);
        let mut chunks = Vec::with_capacity(runs.len());
        let mut pending = Vec::with_capacity(runs.len());
        let first = if runs.is_empty() {
            0..records.len()
        } else {
            runs.remove(0)
        };
        let rest = runs;
        let mut head = Chunk::new(records, first, response);
        if rest.is_empty() {
            pending.push(head.run(processor));
            chunks.push(head);
        } else {
            let runtime = tokio::runtime::Handle::try_current().ok();
            let others = std::thread::scope(|scope| {
                let workers: Vec<_> = rest
                    .iter()
                    .map(|run| {
                        let answers = Answers::part(part_capacity(&records[run.clone()]), style);
                        let mut chunk = Chunk::new(records, run.clone(), answers);
                        let runtime = runtime.clone();
                        scope.spawn(move || {
                            // A function that reaches for the Tokio runtime finds it here too.
                            let _entered = runtime.as_ref().map(|r| r.enter());
                            let waiting = chunk.run(processor);
                            (chunk, waiting)
                        })
                    })
                    .collect();
                pending.push(head.run(processor));
                workers
                    .into_iter()
                    .zip(&rest)
                    .map(|(worker, run)| {
                        worker.join().unwrap_or_else(|panic| {
                            // Not the user's function (its panics are caught per record):
                            // a bug here. The run's records fail; the invocation goes on.
                            let message = crate::pipeline::panic_message(&*panic);
                            eprintln!("kpipe: internal error in a worker thread: {message}");
                            let answers = Answers::part(0, style);
                            let mut chunk = Chunk::new(records, run.clone(), answers);
                            chunk.fail_rest(&format!("internal error: {message}"));
                            (chunk, None)
                        })
                    })
                    .collect::<Vec<_>>()
            });
            chunks.push(head);
            for (chunk, waiting) in others {
                chunks.push(chunk);
                pending.push(waiting);
            }
        }
        // Records waiting on an async transform are awaited here, in order, each run going
        // on from its waiting record.
        for (chunk, waiting) in chunks.iter_mut().zip(pending) {
            if let Some(future) = waiting {
                let result = future.await;
                chunk.resolve(result);
            }
            while let Some(future) = chunk.run(processor) {
                let result = future.await;
                chunk.resolve(result);
            }
        }
        assemble(chunks, budget, style)
    }
}

/// Cuts the records into at most `threads` contiguous runs of about equal bytes, each worth a
/// thread; always at least one run.
fn runs(records: &[Incoming<'_>], threads: usize) -> Vec<Range<usize>> {
    let total: usize = records.iter().map(|r| r.data.len()).sum();
    let n = threads.min(total / MIN_BYTES_PER_THREAD).max(1);
    if n == 1 {
        return std::iter::once(0..records.len()).collect();
    }
    let mut runs = Vec::with_capacity(n);
    let (mut start, mut seen) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        seen += r.data.len();
        if seen * n >= total * (runs.len() + 1) && runs.len() + 1 < n {
            runs.push(start..i + 1);
            start = i + 1;
        }
    }
    runs.push(start..records.len());
    runs
}

/// Room for a run's answers: about its share of the event.
fn part_capacity(records: &[Incoming<'_>]) -> usize {
    records.iter().map(|r| r.data.len() + r.id.len() + 64).sum()
}

/// Where one record's answer is, and what its output costs if it is `Ok`.
struct Span {
    answer: Range<usize>,
    /// Bytes the output adds to the envelope, for an `Ok` answer.
    cost: Option<usize>,
}

/// A run of records and their answers.
struct Chunk<'r> {
    records: &'r [Incoming<'r>],
    run: Range<usize>,
    /// The next record to process, an index into `records`.
    next: usize,
    answers: Answers,
    spans: Vec<Span>,
    /// Decoded input and output, reused for every record.
    input: Vec<u8>,
    output: Vec<u8>,
}

impl<'r> Chunk<'r> {
    fn new(records: &'r [Incoming<'r>], run: Range<usize>, answers: Answers) -> Self {
        Chunk {
            records,
            next: run.start,
            spans: Vec::with_capacity(run.len()),
            run,
            answers,
            input: Vec::new(),
            output: Vec::new(),
        }
    }

    /// Processes records until one waits on an async transform, and returns its future (to
    /// be awaited and given to [`resolve`](Self::resolve)); `None` when the run is done.
    fn run(&mut self, processor: &Arc<dyn RecordProcessor>) -> Option<BoxFuture<RecordResult>> {
        while self.next < self.run.end {
            let r = self.records[self.next];
            self.next += 1;
            self.input.clear();
            self.output.clear();
            // Decode base64 per record: a bad record fails alone. Each record goes through
            // the same processor as in the local engine (`firehose::invoke_batch` does
            // exactly this per record).
            let appended = match base64_simd::STANDARD.decode_append(r.data, &mut self.input) {
                Ok(())
                    if self.input.starts_with(&crate::kpl::MAGIC)
                        && crate::kpl::is_aggregated(&self.input) =>
                {
                    aggregated(processor, &self.input, &mut self.output)
                }
                Ok(()) => processor.process_into(&self.input, &mut self.output),
                Err(e) => Appended::Failed(format!("not valid base64: {e}")),
            };
            match appended {
                Appended::Ok(keys) => {
                    let cost = self.answers.style().output_cost(self.output.len(), &keys);
                    let answer = self
                        .answers
                        .write(r.id, r.plain_id, "Ok", &self.output, &keys);
                    self.spans.push(Span {
                        answer: answer.0..answer.1,
                        cost: Some(cost),
                    });
                }
                Appended::Dropped => self.not_ok(r, "Dropped", None),
                Appended::Failed(message) => self.not_ok(r, "ProcessingFailed", Some(&message)),
                Appended::Pending(future) => return Some(future),
            }
        }
        None
    }

    /// Answers the record whose future [`run`](Self::run) returned.
    fn resolve(&mut self, result: RecordResult) {
        let r = self.records[self.next - 1];
        match result {
            RecordResult::Ok {
                data,
                partition_keys,
            } => {
                let cost = self
                    .answers
                    .style()
                    .output_cost(data.len(), &partition_keys);
                let answer = self
                    .answers
                    .write(r.id, r.plain_id, "Ok", &data, &partition_keys);
                self.spans.push(Span {
                    answer: answer.0..answer.1,
                    cost: Some(cost),
                });
            }
            RecordResult::Dropped => self.not_ok(r, "Dropped", None),
            RecordResult::Failed(message) => self.not_ok(r, "ProcessingFailed", Some(&message)),
        }
    }

    /// A `Dropped` or `ProcessingFailed` answer; a failure is logged with its reason.
    fn not_ok(&mut self, r: Incoming<'_>, result: &'static str, failure: Option<&str>) {
        if let Some(message) = failure {
            eprintln!("kpipe: record {} failed: {message}", r.id);
        }
        let answer = self.answers.write(r.id, r.plain_id, result, &[], &[]);
        self.spans.push(Span {
            answer: answer.0..answer.1,
            cost: None,
        });
    }

    /// Fails every record not processed yet.
    fn fail_rest(&mut self, message: &str) {
        while self.next < self.run.end {
            let r = self.records[self.next];
            self.next += 1;
            self.not_ok(r, "ProcessingFailed", Some(message));
        }
    }
}

/// The response from the runs' answers, in order. Outputs are paid from `budget` in record
/// order; when one does not fit, its record is answered `ProcessingFailed` instead.
fn assemble(chunks: Vec<Chunk<'_>>, budget: usize, style: Style) -> Vec<u8> {
    let total: usize = chunks
        .iter()
        .flat_map(|c| &c.spans)
        .filter_map(|s| s.cost)
        .sum();
    let mut chunks = chunks.into_iter();
    let Some(head) = chunks.next() else {
        return Answers::response(16, style).finish();
    };
    if total <= budget {
        // Everything fits (the usual case): the other runs' answers follow the first run's.
        let rest: Vec<Chunk<'_>> = chunks.collect();
        let mut response = head.answers;
        for chunk in &rest {
            response.append(&chunk.answers);
        }
        return response.finish();
    }
    let mut budget = budget;
    let capacity = head.answers.bytes().len();
    let mut response = Answers::response(capacity, style);
    for chunk in std::iter::once(head).chain(chunks) {
        for (span, i) in chunk.spans.iter().zip(chunk.run.clone()) {
            match span.cost {
                Some(cost) if cost > budget => {
                    let r = chunk.records[i];
                    eprintln!(
                        "kpipe: record {} failed: its output does not fit in Lambda's 6 MB response",
                        r.id
                    );
                    response.write(r.id, r.plain_id, "ProcessingFailed", &[], &[]);
                }
                cost => {
                    budget -= cost.unwrap_or(0);
                    response.copy(&chunk.answers.bytes()[span.answer.clone()]);
                }
            }
        }
    }
    response.finish()
}

/// A KPL aggregate (aws-facts.md §7) is one record to Firehose, so it gets one result: its
/// user records are processed in order; their outputs are concatenated; it fails if one fails
/// or if they map to different partitions, and is dropped if all are dropped. When a user
/// record waits on an async transform, the rest of the aggregate goes on in the returned
/// future.
fn aggregated(processor: &Arc<dyn RecordProcessor>, data: &[u8], out: &mut Vec<u8>) -> Appended {
    let start = out.len();
    let mut keys = None;
    let mut subs = crate::kpl::deaggregate(data).into_iter();
    while let Some(sub) = subs.next() {
        let step = match processor.process_into(&sub, out) {
            Appended::Pending(future) => {
                let done = out.split_off(start);
                let rest: Vec<Vec<u8>> = subs.collect();
                return Appended::Pending(Box::pin(aggregated_async(
                    Arc::clone(processor),
                    done,
                    keys,
                    future,
                    rest,
                )));
            }
            other => merge(&mut keys, other),
        };
        if let Err(failed) = step {
            out.truncate(start);
            return failed;
        }
    }
    match keys {
        Some(partition_keys) => Appended::Ok(partition_keys),
        None => Appended::Dropped,
    }
}

/// The rest of an aggregate, from a user record that waits on an async transform.
async fn aggregated_async(
    processor: Arc<dyn RecordProcessor>,
    mut out: Vec<u8>,
    mut keys: Option<Vec<(&'static str, String)>>,
    waiting: BoxFuture<RecordResult>,
    rest: Vec<Vec<u8>>,
) -> RecordResult {
    let into_result = |r: Appended| match r {
        Appended::Dropped => RecordResult::Dropped,
        Appended::Failed(m) => RecordResult::Failed(m),
        Appended::Ok(_) | Appended::Pending(_) => {
            RecordResult::Failed("kpipe: internal error in a KPL aggregate".into())
        }
    };
    let mut step = Some(waiting);
    let mut subs = rest.into_iter();
    loop {
        let appended = match step.take() {
            Some(future) => match future.await {
                RecordResult::Ok {
                    data,
                    partition_keys,
                } => {
                    out.extend_from_slice(&data);
                    Appended::Ok(partition_keys)
                }
                RecordResult::Dropped => Appended::Dropped,
                RecordResult::Failed(m) => Appended::Failed(m),
            },
            None => match subs.next() {
                Some(sub) => match processor.process_into(&sub, &mut out) {
                    Appended::Pending(future) => {
                        step = Some(future);
                        continue;
                    }
                    other => other,
                },
                None => break,
            },
        };
        if let Err(failed) = merge(&mut keys, appended) {
            return into_result(failed);
        }
    }
    match keys {
        Some(partition_keys) => RecordResult::Ok {
            data: out,
            partition_keys,
        },
        None => RecordResult::Dropped,
    }
}

/// Folds one user record's result into its aggregate's keys; `Err` is the aggregate's answer
/// when the record fails it.
fn merge(
    keys: &mut Option<Vec<(&'static str, String)>>,
    appended: Appended,
) -> Result<(), Appended> {
    match appended {
        Appended::Ok(partition_keys) => {
            if keys.as_ref().is_some_and(|k| *k != partition_keys) {
                return Err(Appended::Failed(
                    "the user records of one KPL aggregate map to different partitions".into(),
                ));
            }
            *keys = Some(partition_keys);
            Ok(())
        }
        Appended::Dropped => Ok(()),
        Appended::Failed(m) => Err(Appended::Failed(format!("in a KPL aggregate: {m}"))),
        Appended::Pending(_) => Err(Appended::Failed(
            "kpipe: internal error: a pending record in a KPL aggregate".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{Incoming, runs, threads_from};

    #[test]
    fn the_thread_count_is_the_variable_or_what_the_memory_buys() {
        let mb = |m: &str| Some(m.to_owned());
        // Outside Lambda: the CPUs.
        assert_eq!(threads_from(None, None, 2), 2);
        // In Lambda: one thread per 1,769 MB begun, at most the CPUs seen.
        assert_eq!(threads_from(None, mb("128"), 2), 1);
        assert_eq!(threads_from(None, mb("1769"), 2), 1);
        assert_eq!(threads_from(None, mb("3008"), 2), 2);
        assert_eq!(threads_from(None, mb("10240"), 6), 6);
        assert_eq!(threads_from(None, mb("10240"), 2), 2);
        // The variable wins; a bad value falls back with a message.
        assert_eq!(threads_from(Some(" 3 ".into()), mb("128"), 2), 3);
        assert_eq!(threads_from(Some("0".into()), None, 2), 2);
        assert_eq!(threads_from(Some("many".into()), mb("4000"), 6), 3);
    }

    #[test]
    fn runs_are_contiguous_balanced_and_worth_a_thread() {
        let data = "x".repeat(1000);
        let records: Vec<Incoming<'_>> = (0..1000)
            .map(|_| Incoming {
                id: "1",
                plain_id: true,
                data: &data,
            })
            .collect();
        // 1 MB: at most 3 runs of 256 KiB or more.
        for threads in 1..6 {
            let r = runs(&records, threads);
            assert_eq!(r.len(), threads.min(3), "{threads}");
            assert_eq!(r[0].start, 0);
            assert_eq!(r.last().unwrap().end, 1000);
            for w in r.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
            let (shortest, longest) = (
                r.iter().map(|x| x.len()).min().unwrap(),
                r.iter().map(|x| x.len()).max().unwrap(),
            );
            assert!(longest - shortest <= 1, "{r:?}");
        }
        let small = runs(&records[..10], 4);
        assert_eq!((small.len(), &small[0]), (1, &(0..10)));
        let none = runs(&[], 4);
        assert_eq!((none.len(), &none[0]), (1, &(0..0)));
    }
}
