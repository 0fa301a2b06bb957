//! A consumer's on-failure destination in the local engine: one invocation record per
//! discarded batch, as Lambda sends it ("Retain discarded batch records for a Kinesis Data
//! Streams event source in Lambda",
//! <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>).
//!
//! - An S3 bucket gets the record with the whole event in `payload` (an escaped JSON
//!   string), at `aws/lambda/<mapping uuid>/<shard id>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<uuid>`.
//! - An SQS queue or SNS topic gets the metadata only. Locally there is no queue or topic, so
//!   each message is an object of the engine's store at
//!   `_kpipe/on-failure/<sqs|sns>/<name>/YYYY-MM-DDTHH.MM.SS-<uuid>.json` (kpipe's choice,
//!   docs/engine.md).

use super::Sink;
use super::delivery::put_until;
use super::naming::local_time;
use super::stream::SourceRecord;
use crate::spec::OnFailure;
use base64::Engine as _;
use object_store::path::Path as StorePath;
use serde_json::json;
use tokio::time::{Duration, Instant};

/// Why a batch was discarded: the invocation record's `requestContext.condition`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Condition {
    /// `maximum_retries` retries failed (AWS's `RetryAttemptsExhausted`).
    RetriesExhausted,
    /// Records older than `maximum_record_age`. AWS's page shows only the condition above;
    /// kpipe writes `MaximumRecordAgeExceeded` for these (docs/engine.md).
    RecordAgeExceeded,
}

impl Condition {
    fn aws_name(self) -> &'static str {
        match self {
            Condition::RetriesExhausted => "RetryAttemptsExhausted",
            Condition::RecordAgeExceeded => "MaximumRecordAgeExceeded",
        }
    }
}

/// Where one consumer's discarded batches are recorded.
#[derive(Clone)]
pub(crate) struct OnFailureSink {
    pub(crate) destination: OnFailure,
    /// The engine's store for SQS and SNS; the bucket's for S3.
    pub(crate) sink: Sink,
    /// Stands for the event source mapping's UUID in S3 keys.
    pub(crate) mapping_uuid: String,
    pub(crate) function_arn: String,
    pub(crate) stream_arn: String,
    pub(crate) write_deadline: Duration,
}

/// A discarded batch, as the invocation record describes it.
pub(crate) struct Discarded<'a> {
    pub(crate) shard: usize,
    pub(crate) records: &'a [SourceRecord],
    pub(crate) condition: Condition,
    /// Invocations of the batch (AWS's `approximateInvokeCount`; 0 when it expired unread).
    pub(crate) invocations: u64,
    /// Function error of the last invocation, if it was invoked.
    pub(crate) error: Option<&'a str>,
    pub(crate) now_ms: i64,
}

impl OnFailureSink {
    /// Writes the invocation record of `batch`; the error says why it could not.
    pub(crate) async fn record(&self, batch: &Discarded<'_>) -> Result<String, String> {
        let (Some(first), Some(last)) = (batch.records.first(), batch.records.last()) else {
            return Err("an empty batch has no invocation record".into());
        };
        let shard_id = format!("shardId-{:012}", batch.shard);
        let time = |ms: i64| {
            local_time(ms, None)
                .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                .to_string()
        };
        let mut document = json!({
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": self.function_arn,
                "condition": batch.condition.aws_name(),
                "approximateInvokeCount": batch.invocations,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": if batch.error.is_some() { "Unhandled" } else { "" },
            },
            "version": "1.0",
            "timestamp": time(batch.now_ms),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first.sequence.to_string(),
                "endSequenceNumber": last.sequence.to_string(),
                "approximateArrivalOfFirstRecord": time(first.arrival_ms),
                "approximateArrivalOfLastRecord": time(last.arrival_ms),
                "batchSize": batch.records.len(),
                "streamArn": self.stream_arn,
            },
        });
        let now = local_time(batch.now_ms, None);
        let stamp = now.format("%Y-%m-%dT%H.%M.%S").to_string();
        let id = uuid::Uuid::new_v4();
        let key = match self.destination {
            OnFailure::S3(_) => {
                document["payload"] = json!(self.event(&shard_id, batch.records).to_string());
                let key = format!(
                    "aws/lambda/{}/{shard_id}/{}/{stamp}-{id}",
                    self.mapping_uuid,
                    now.format("%Y/%m/%d")
                );
                if self.sink.bucket_in_key {
                    format!("{}/{key}", self.destination.name())
                } else {
                    key
                }
            }
            OnFailure::Sqs(_) | OnFailure::Sns(_) => {
                let kind = if matches!(self.destination, OnFailure::Sqs(_)) {
                    "sqs"
                } else {
                    "sns"
                };
                format!(
                    "_kpipe/on-failure/{kind}/{}/{stamp}-{id}.json",
                    self.destination.name()
                )
            }
        };
        let path = StorePath::parse(&key).map_err(|e| format!("{key}: {e}"))?;
        let body = serde_json::to_vec(&document).map_err(|e| e.to_string())?;
        put_until(
            &*self.sink.store,
            &path,
            body.into(),
            Instant::now() + self.write_deadline,
        )
        .await
        .map(|()| key)
    }

    /// The Kinesis event the batch was (or would have been) invoked with.
    fn event(&self, shard_id: &str, records: &[SourceRecord]) -> serde_json::Value {
        let region = self.stream_arn.split(':').nth(3).unwrap_or_default();
        let records: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                json!({
                    "kinesis": {
                        "kinesisSchemaVersion": "1.0",
                        "sequenceNumber": r.sequence.to_string(),
                        "data": base64::engine::general_purpose::STANDARD.encode(&r.data),
                        "approximateArrivalTimestamp": r.arrival_ms as f64 / 1000.0,
                    },
                    "eventSource": "aws:kinesis",
                    "eventVersion": "1.0",
                    "eventID": format!("{shard_id}:{}", r.sequence),
                    "eventName": "aws:kinesis:record",
                    "awsRegion": region,
                    "eventSourceARN": self.stream_arn,
                })
            })
            .collect();
        json!({ "Records": records })
    }
}
