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
