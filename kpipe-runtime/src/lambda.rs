//! The Lambda handlers of a pipeline (feature `lambda`): the Firehose data-transformation
//! handler of a transform, and the Kinesis handler of a consumer.
//!
//! The handler runs each record through the same [`RecordProcessor`] as the local engine
//! (decode, call your function, encode, delimiter, partition keys), so a pipeline behaves the
//! same locally and in AWS. A Lambda binary is one line:
//!
//! ```ignore
//! kpipe_runtime::lambda_main!(Telemetry, enrich);
//! ```
//!
//! - Every `recordId` is echoed exactly once; results are `Ok` (with the output and
//!   `metadata.partitionKeys`), `Dropped` or `ProcessingFailed` (aws-facts.md §4.2).
//! - A record whose data is not valid base64, does not decode into the input type, or makes
//!   your function panic fails alone; the handler itself never panics.
//! - The response stays under Lambda's 6 MB payload limit (aws-facts.md §3.4): records whose
//!   output would not fit are answered `ProcessingFailed` (and logged) instead of producing a
//!   response Firehose would reject as a whole.
//!
//! The consumer handler ([`ConsumerHandler`]) answers a Kinesis event with a partial batch
//! response (aws-facts.md §4.4): records are consumed in order, and at the first failure its
//! sequence number is returned in `batchItemFailures` and the rest of the batch is left
//! alone, since Lambda retries from that record anyway (processing the later ones now would
//! only run them twice).

use crate::pipeline::{Appended, Pipeline, RecordProcessor, RecordResult};
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::firehose::{KinesisFirehoseResponse, KinesisFirehoseResponseRecord};
use aws_lambda_events::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use base64::Engine as _;
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;

/// Lambda's synchronous response limit (aws-facts.md §3.4).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// The transformation event as Firehose sends it (aws-facts.md §4.1), read leniently: a
/// record's `data` stays a string until the handler decodes it, so one bad record cannot fail
/// the whole invocation.
#[derive(Clone, Debug, Default, Deserialize)]
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
#[derive(Clone, Debug, Default, Deserialize)]
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

/// Why a handler could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum LambdaError {
    /// No delivery of the pipeline uses this transform.
    UnknownTransform(String),
    /// The pipeline has no consumer of this name.
    UnknownConsumer(String),
    /// The pipeline has neither a transform nor a consumer of this name.
    UnknownStage(String),
    /// The invocation's payload is not the event the handler answers.
    InvalidEvent(String),
}

impl std::fmt::Display for LambdaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LambdaError::UnknownTransform(t) => {
                write!(f, "no delivery of this pipeline uses transform `{t}`")
            }
            LambdaError::UnknownConsumer(c) => {
                write!(f, "this pipeline has no consumer `{c}`")
            }
            LambdaError::UnknownStage(s) => {
                write!(f, "this pipeline has no transform or consumer `{s}`")
            }
            LambdaError::InvalidEvent(e) => write!(f, "not a Firehose transformation event: {e}"),
        }
    }
}

impl std::error::Error for LambdaError {}

/// The Firehose handler of one transform.
#[derive(Clone)]
pub struct FirehoseHandler {
    transform: &'static str,
    /// `(delivery stream name, processor)` for each delivery using the transform.
    deliveries: Vec<(&'static str, Arc<dyn RecordProcessor>)>,
}

impl std::fmt::Debug for FirehoseHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FirehoseHandler")
            .field("transform", &self.transform)
            .finish()
    }
}

fn response_record(
    record_id: String,
    result: &'static str,
    data: Vec<u8>,
    keys: Vec<(&'static str, String)>,
) -> KinesisFirehoseResponseRecord {
    let mut r = KinesisFirehoseResponseRecord::default();
    r.record_id = Some(record_id);
    r.result = Some(result.to_owned());
    let mut d = Base64Data::default();
    d.0 = data;
    r.data = d;
    r.metadata.partition_keys = keys.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    r
}

impl FirehoseHandler {
    /// The handler of pipeline `P`'s transform `transform_id`.
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
        })
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

    /// Answers one invocation.
    pub async fn handle(&self, event: TransformationEvent) -> KinesisFirehoseResponse {
        let mut sink = TypedResponse(KinesisFirehoseResponse::default());
        let records = event.records.iter().map(|r| Incoming {
            id: &r.record_id,
            plain_id: false,
            data: &r.data,
        });
        self.respond(event.delivery_stream_arn.as_deref(), records, &mut sink)
            .await;
        sink.0
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
        // The response is about as large as the event; reserve that once.
        let mut sink = JsonResponse::with_capacity(event.len() + 64);
        let records = view.records.iter().map(|r| Incoming {
            id: &r.record_id,
            // sonic-rs borrows a string only when it has no escapes, and rejects raw control
            // characters: such an id is written back as it came.
            plain_id: matches!(r.record_id, Cow::Borrowed(_)),
            data: &r.data,
        });
        self.respond(view.delivery_stream_arn.as_deref(), records, &mut sink)
            .await;
        Ok(sink.finish())
    }

    /// Runs every record through the delivery's processor and answers each, in order, into
    /// `sink`, within Lambda's response limit.
    async fn respond<'a>(
        &self,
        arn: Option<&str>,
        records: impl ExactSizeIterator<Item = Incoming<'a>> + Clone,
        sink: &mut impl ResponseSink,
    ) {
        let Some(processor) = self.processor(arn) else {
            eprintln!(
                "kpipe: transform `{}` is not used by delivery stream {arn:?}; failing the batch",
                self.transform
            );
            for r in records {
                sink.record(r.id, "ProcessingFailed", &[], &[]);
            }
            return;
        };
        // Every record is answered, so each one's envelope (id, result, empty data) is
        // reserved first; outputs and keys are paid from what remains.
        let reserved: usize = 16
            + records
                .clone()
                .map(|r| sink.envelope(r.id, r.plain_id))
                .sum::<usize>();
        let mut budget = MAX_RESPONSE_BYTES.saturating_sub(reserved);
        sink.reserve(records.len());
        // One buffer for the decoded input and one for the output, reused for every record.
        let mut input = Vec::new();
        let mut output = Vec::new();
        for Incoming { id, data, .. } in records {
            // Decode base64 per record: a bad record fails alone. Each record goes through the
            // same processor as in the local engine (`firehose::invoke_batch` does exactly this
            // per record), without copying the batch.
            input.clear();
            output.clear();
            let appended = match base64_simd::STANDARD.decode_append(data, &mut input) {
                Ok(())
                    if input.starts_with(&crate::kpl::MAGIC)
                        && crate::kpl::is_aggregated(&input) =>
                {
                    aggregated(&**processor, &input, &mut output).await
                }
                Ok(()) => processor.process_into(&input, &mut output),
                Err(e) => Appended::Failed(format!("not valid base64: {e}")),
            };
            let pending;
            let (data, partition_keys) = match appended {
                Appended::Ok(keys) => (&output, keys),
                Appended::Pending(f) => match f.await {
                    RecordResult::Ok {
                        data,
                        partition_keys,
                    } => {
                        pending = data;
                        (&pending, partition_keys)
                    }
                    RecordResult::Dropped => {
                        sink.record(id, "Dropped", &[], &[]);
                        continue;
                    }
                    RecordResult::Failed(message) => {
                        failed(sink, id, &message);
                        continue;
                    }
                },
                Appended::Dropped => {
                    sink.record(id, "Dropped", &[], &[]);
                    continue;
                }
                Appended::Failed(message) => {
                    failed(sink, id, &message);
                    continue;
                }
            };
            let need = sink.output_cost(data.len(), &partition_keys);
            if need <= budget {
                budget -= need;
                sink.record(id, "Ok", data, &partition_keys);
            } else {
                failed(
                    sink,
                    id,
                    "its output does not fit in Lambda's 6 MB response",
                );
            }
        }
    }
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

/// Answers `ProcessingFailed` to a record, saying why in the function's log.
fn failed(sink: &mut impl ResponseSink, id: &str, message: &str) {
    eprintln!("kpipe: record {id} failed: {message}");
    sink.record(id, "ProcessingFailed", &[], &[]);
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

/// Where the handler's per-record answers go.
trait ResponseSink {
    fn reserve(&mut self, records: usize);
    fn record(
        &mut self,
        id: &str,
        result: &'static str,
        data: &[u8],
        keys: &[(&'static str, String)],
    );

    /// Bytes of the answer `{"recordId":..,"result":"ProcessingFailed","data":""...}` to a
    /// record with this id, separator included (an upper bound). `plain`: the id is known to
    /// need no escaping.
    fn envelope(&self, id: &str, plain: bool) -> usize;

    /// Bytes an output adds to its envelope: base64 data, and the partition keys.
    fn output_cost(&self, data: usize, keys: &[(&'static str, String)]) -> usize {
        data.div_ceil(3) * 4
            + keys
                .iter()
                .map(|(k, v)| k.len() + v.len() + 8)
                .sum::<usize>()
    }
}

/// Answers as aws_lambda_events' response type.
struct TypedResponse(KinesisFirehoseResponse);

impl ResponseSink for TypedResponse {
    fn reserve(&mut self, records: usize) {
        self.0.records.reserve(records);
    }

    fn envelope(&self, id: &str, _plain: bool) -> usize {
        // aws_lambda_events always writes `"metadata":{"partitionKeys":{}}`.
        id.len() + 96
    }

    fn record(
        &mut self,
        id: &str,
        result: &'static str,
        data: &[u8],
        keys: &[(&'static str, String)],
    ) {
        self.0.records.push(response_record(
            id.to_owned(),
            result,
            data.to_vec(),
            keys.to_vec(),
        ));
    }
}

/// Answers written straight into the response's JSON (aws-facts.md §4.2).
struct JsonResponse {
    out: Vec<u8>,
    first: bool,
}

impl JsonResponse {
    fn with_capacity(bytes: usize) -> Self {
        let mut out = Vec::with_capacity(bytes);
        out.extend_from_slice(b"{\"records\":[");
        JsonResponse { out, first: true }
    }

    fn string(&mut self, s: &str) {
        // Ids, keys and values are short; serde_json escapes them exactly as JSON needs.
        serde_json::to_writer(&mut self.out, s).expect("writing a string into a Vec cannot fail");
    }

    fn finish(mut self) -> Vec<u8> {
        self.out.extend_from_slice(b"]}");
        self.out
    }
}

impl ResponseSink for JsonResponse {
    fn reserve(&mut self, _records: usize) {}

    fn envelope(&self, id: &str, plain: bool) -> usize {
        // `{"recordId":"<id>","result":"ProcessingFailed","data":""},`, exactly.
        let id = if plain { id.len() + 2 } else { json_len(id) };
        id + 34 + json_len("ProcessingFailed")
    }

    fn output_cost(&self, data: usize, keys: &[(&'static str, String)]) -> usize {
        let metadata = if keys.is_empty() {
            0
        } else {
            // `,"metadata":{"partitionKeys":{"k":"v",...}}`
            31 + keys
                .iter()
                .map(|(k, v)| json_len(k) + json_len(v) + 2)
                .sum::<usize>()
        };
        // An `Ok` answer is 14 bytes shorter than the reserved `ProcessingFailed`.
        (data.div_ceil(3) * 4 + metadata).saturating_sub("ProcessingFailed".len() - "Ok".len())
    }

    fn record(
        &mut self,
        id: &str,
        result: &'static str,
        data: &[u8],
        keys: &[(&'static str, String)],
    ) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(b"{\"recordId\":");
        self.string(id);
        self.out.extend_from_slice(b",\"result\":\"");
        self.out.extend_from_slice(result.as_bytes());
        self.out.extend_from_slice(b"\",\"data\":\"");
        base64_simd::STANDARD.encode_append(data, &mut self.out);
        self.out.push(b'"');
        // `metadata` is only for partition keys (aws-facts.md §4.2); leaving it out when there
        // are none keeps 33 bytes per record inside the 6 MB response.
        if !keys.is_empty() {
            self.out
                .extend_from_slice(b",\"metadata\":{\"partitionKeys\":{");
            for (i, (k, v)) in keys.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.string(k);
                self.out.push(b':');
                self.string(v);
            }
            self.out.extend_from_slice(b"}}");
        }
        self.out.push(b'}');
    }
}

/// The length of `s` as a JSON string, quotes included.
fn json_len(s: &str) -> usize {
    // Ids and keys rarely need escapes: count them first (a loop the compiler vectorises).
    let special = s
        .bytes()
        .filter(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .count();
    if special == 0 {
        return s.len() + 2;
    }
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// A KPL aggregate (aws-facts.md §7) is one record to Firehose, so it gets one result: its
/// user records are processed in order; their outputs are concatenated; it fails if one fails
/// or if they map to different partitions, and is dropped if all are dropped.
async fn aggregated(processor: &dyn RecordProcessor, data: &[u8], out: &mut Vec<u8>) -> Appended {
    let start = out.len();
    let result = aggregated_into(processor, data, out).await;
    if !matches!(result, Appended::Ok(_)) {
        out.truncate(start);
    }
    result
}

async fn aggregated_into(
    processor: &dyn RecordProcessor,
    data: &[u8],
    out: &mut Vec<u8>,
) -> Appended {
    let mut keys: Option<Vec<(&'static str, String)>> = None;
    for sub in crate::kpl::deaggregate(data) {
        let partition_keys = match processor.process_into(&sub, out) {
            Appended::Ok(partition_keys) => partition_keys,
            Appended::Pending(f) => match f.await {
                RecordResult::Ok {
                    data,
                    partition_keys,
                } => {
                    out.extend_from_slice(&data);
                    partition_keys
                }
                RecordResult::Dropped => continue,
                RecordResult::Failed(m) => {
                    return Appended::Failed(format!("in a KPL aggregate: {m}"));
                }
            },
            Appended::Dropped => continue,
            Appended::Failed(m) => return Appended::Failed(format!("in a KPL aggregate: {m}")),
        };
        if keys.as_ref().is_some_and(|k| *k != partition_keys) {
            return Appended::Failed(
                "the user records of one KPL aggregate map to different partitions".into(),
            );
        }
        keys = Some(partition_keys);
    }
    match keys {
        Some(partition_keys) => Appended::Ok(partition_keys),
        None => Appended::Dropped,
    }
}

/// The Kinesis event as Lambda's event source mapping sends it (aws-facts.md §4.4), read
/// leniently: a record's `data` stays a string until the handler decodes it, so one bad
/// record fails alone instead of the whole invocation.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KinesisStreamEvent {
    /// The records, in shard order.
    #[serde(rename = "Records", default)]
    pub records: Vec<KinesisStreamRecord>,
}

/// One record of a [`KinesisStreamEvent`].
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KinesisStreamRecord {
    /// `shardId-000000000000:<sequence number>`.
    #[serde(rename = "eventID", default)]
    pub event_id: String,
    /// The stream's ARN.
    #[serde(rename = "eventSourceARN", default)]
    pub event_source_arn: String,
    /// The Kinesis part of the record.
    #[serde(default)]
    pub kinesis: KinesisStreamData,
}

/// The `kinesis` object of a [`KinesisStreamRecord`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisStreamData {
    /// The partition key.
    #[serde(default)]
    pub partition_key: String,
    /// The sequence number: what a batch item failure names.
    #[serde(default)]
    pub sequence_number: String,
    /// The data, base64.
    #[serde(default)]
    pub data: String,
}

/// The Kinesis handler of one consumer.
#[derive(Clone, Debug)]
pub struct ConsumerHandler {
    consumer: crate::pipeline::AnyConsumer,
}

impl ConsumerHandler {
    /// The handler of pipeline `P`'s consumer `consumer_id`.
    ///
    /// # Errors
    /// [`LambdaError::UnknownConsumer`] when the pipeline has no such consumer.
    pub fn new<P: Pipeline>(consumer_id: &str) -> Result<Self, LambdaError> {
        P::consumers()
            .into_iter()
            .find(|c| c.spec().id == consumer_id)
            .map(|consumer| ConsumerHandler { consumer })
            .ok_or_else(|| LambdaError::UnknownConsumer(consumer_id.to_owned()))
    }

    /// Answers one invocation: consumes the records in order and, at the first one that
    /// fails (bad base64, not the record type, the function's `Err` or panic), names it in
    /// `batchItemFailures` and stops.
    pub async fn handle(&self, event: KinesisStreamEvent) -> KinesisEventResponse {
        let mut response = KinesisEventResponse::default();
        let mut data = Vec::new();
        for r in event.records {
            data.clear();
            let result = match base64::engine::general_purpose::STANDARD
                .decode_vec(&r.kinesis.data, &mut data)
            {
                Ok(())
                    if data.starts_with(&crate::kpl::MAGIC) && crate::kpl::is_aggregated(&data) =>
                {
                    let mut result = Ok(());
                    for sub in crate::kpl::deaggregate(&data) {
                        if let Err(e) = self.consumer.consume(&sub).result().await {
                            result = Err(format!("in a KPL aggregate: {e}"));
                            break;
                        }
                    }
                    result
                }
                Ok(()) => self.consumer.consume(&data).result().await,
                Err(e) => Err(format!("not valid base64: {e}")),
            };
            if let Err(message) = result {
                eprintln!(
                    "kpipe: consumer `{}`: record {} failed: {message}; Lambda retries from it",
                    self.consumer.spec().id,
                    r.kinesis.sequence_number
                );
                let mut failure = KinesisBatchItemFailure::default();
                failure.item_identifier = Some(r.kinesis.sequence_number);
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response
    }
}

/// Runs the handler of pipeline `P`'s transform or consumer `stage_id` under
/// `lambda_runtime`: the body of a Lambda binary's `main` (see
/// [`lambda_main!`](crate::lambda_main)).
pub fn serve<P: Pipeline>(stage_id: &str) -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let served = if P::SPEC.transform(stage_id).is_some() {
        let handler = match FirehoseHandler::new::<P>(stage_id) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        // The event stays raw JSON and the response is written as raw JSON
        // (`FirehoseHandler::handle_json`): no tree of the event or of the response is built.
        let service = lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<Box<serde_json::value::RawValue>>| {
                let handler = handler.clone();
                async move {
                    let out = handler.handle_json(event.payload.get().as_bytes()).await?;
                    let text = String::from_utf8(out)?;
                    Ok::<_, lambda_runtime::Error>(serde_json::value::RawValue::from_string(text)?)
                }
            },
        );
        runtime.block_on(lambda_runtime::run(service))
    } else if P::SPEC.consumer(stage_id).is_some() {
        let handler = match ConsumerHandler::new::<P>(stage_id) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e}");
                return std::process::ExitCode::from(2);
            }
        };
        let service = lambda_runtime::service_fn(
            move |event: lambda_runtime::LambdaEvent<KinesisStreamEvent>| {
                let handler = handler.clone();
                async move { Ok::<_, lambda_runtime::Error>(handler.handle(event.payload).await) }
            },
        );
        runtime.block_on(lambda_runtime::run(service))
    } else {
        eprintln!("error: {}", LambdaError::UnknownStage(stage_id.to_owned()));
        return std::process::ExitCode::from(2);
    };
    match served {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
