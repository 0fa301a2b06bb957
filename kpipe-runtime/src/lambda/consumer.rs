//! The Kinesis handler of a consumer: a partial batch response (AWS Lambda, Using Lambda with Kinesis Data Streams: <https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html>).

use super::LambdaError;
use crate::pipeline::Pipeline;
use aws_lambda_events::streams::{KinesisBatchItemFailure, KinesisEventResponse};
use base64::Engine as _;
use serde::Deserialize;

/// The Kinesis event as Lambda's event source mapping sends it (AWS Lambda, Using Lambda with Kinesis Data Streams: <https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html>), read
/// leniently: a record's `data` stays a string until the handler decodes it, so one bad
/// record fails alone instead of the whole invocation.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct KinesisStreamEvent {
    /// The records, in shard order.
    #[serde(rename = "Records", default)]
    pub records: Vec<KinesisStreamRecord>,
    /// With a tumbling window: the window these records belong to.
    #[serde(default)]
    pub window: Option<aws_lambda_events::time_window::Window>,
    /// With a tumbling window: the state the last invocation of this window returned.
    #[serde(default)]
    pub state: Option<serde_json::Value>,
    /// With a tumbling window: the shard.
    #[serde(rename = "shardId", default)]
    pub shard_id: Option<String>,
    /// With a tumbling window: the window has ended, this is its last invocation.
    #[serde(rename = "isFinalInvokeForWindow", default)]
    pub is_final_invoke_for_window: bool,
    /// With a tumbling window: it ended early (its state outgrew 1 MB).
    #[serde(rename = "isWindowTerminatedEarly", default)]
    pub is_window_terminated_early: bool,
}

/// A tumbling-window function's answer: the window's state for the next invocation, and the
/// first record that failed ("Using tumbling windows with Kinesis Data Streams",
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WindowResponse {
    /// The aggregate as JSON.
    pub state: serde_json::Value,
    /// The record Lambda retries from, if one failed.
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<KinesisBatchItemFailure>,
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
    /// The handler of pipeline `P`'s consumer (`Telemetry::frost_alerts()`).
    ///
    /// # Errors
    /// [`LambdaError::UnknownConsumer`] when the consumer is not `P`'s.
    pub fn new<P: Pipeline, I>(consumer: crate::ConsumerDef<I>) -> Result<Self, LambdaError> {
        let spec = consumer.spec();
        P::consumers()
            .into_iter()
            .find(|c| c.spec() == spec)
            .map(|consumer| ConsumerHandler { consumer })
            .ok_or_else(|| LambdaError::UnknownConsumer(spec.id.to_owned()))
    }

    /// Whether this consumer aggregates tumbling windows (answer with
    /// [`handle_window`](Self::handle_window)).
    pub fn is_windowed(&self) -> bool {
        self.consumer.window().is_some()
    }

    /// Answers one invocation of a tumbling-window consumer: resumes the window's state,
    /// adds the records in order until one fails (named in `batchItemFailures`; the state
    /// returned is the one before it), and on the window's final invocation closes it.
    ///
    /// # Errors
    /// The consumer is not windowed, its state does not deserialise or serialise, or the
    /// aggregate's `close` failed: the invocation fails and Lambda retries it.
    pub async fn handle_window(
        &self,
        event: KinesisStreamEvent,
    ) -> Result<WindowResponse, LambdaError> {
        let id = self.consumer.spec().id;
        let windowed = self.consumer.window().ok_or_else(|| {
            LambdaError::Internal(format!("consumer `{id}` has no tumbling window"))
        })?;
        let prior = event.state.unwrap_or(serde_json::Value::Null);
        let mut state = windowed.resume(&prior).map_err(LambdaError::Internal)?;
        let mut response = WindowResponse::default();
        let mut data = Vec::new();
        for r in event.records {
            data.clear();
            let added = match base64::engine::general_purpose::STANDARD
                .decode_vec(&r.kinesis.data, &mut data)
            {
                Ok(()) => match crate::kpl::user_records(&data) {
                    Some(subs) => subs.iter().try_for_each(|sub| {
                        state
                            .add(sub)
                            .map_err(|e| format!("in a KPL aggregate: {e}"))
                    }),
                    None => state.add(&data),
                },
                Err(e) => Err(format!("not valid base64: {e}")),
            };
            if let Err(message) = added {
                eprintln!(
                    "kpipe: consumer `{id}`: record {} failed: {message}; Lambda retries from it",
                    r.kinesis.sequence_number
                );
                let mut failure = KinesisBatchItemFailure::default();
                failure.item_identifier = Some(r.kinesis.sequence_number);
                response.batch_item_failures.push(failure);
                break;
            }
        }
        response.state = state.save().map_err(LambdaError::Internal)?;
        if event.is_final_invoke_for_window && response.batch_item_failures.is_empty() {
            let window = crate::Window {
                start_ms: event
                    .window
                    .as_ref()
                    .map_or(0, |w| w.start.timestamp_millis()),
                end_ms: event
                    .window
                    .as_ref()
                    .map_or(0, |w| w.end.timestamp_millis()),
                shard_id: event.shard_id.unwrap_or_default(),
                terminated_early: event.is_window_terminated_early,
            };
            let state = windowed
                .resume(&response.state)
                .map_err(LambdaError::Internal)?;
            state.close(window).await.map_err(|e| {
                LambdaError::Internal(format!("consumer `{id}`: closing the window failed: {e}"))
            })?;
            response.state = serde_json::Value::Object(serde_json::Map::new());
        }
        Ok(response)
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
                Ok(()) => self.consumer.consume_kinesis_record(&data).await,
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
