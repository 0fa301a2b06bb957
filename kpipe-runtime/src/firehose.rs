//! The Firehose -> Lambda transformation contract, in one place (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>).
//!
//! Firehose buffers records, invokes the transform with a batch (each record with a
//! `recordId`, its arrival time and its data), and expects one result per record: `Ok` (with
//! data and, for dynamic partitioning, partition keys), `Dropped` or `ProcessingFailed`. A
//! response that misses or repeats a `recordId` fails the whole invocation, which is retried;
//! records that still fail become error documents under the error prefix.
//!
//! The local engine and the generated Lambda handler run every record through the same
//! [`RecordProcessor`] (the engine's in-process invoker directly, on every core; a batch for
//! any other invoker through [`invoke_batch`]; the handler record by record as it reads the
//! event), so local behaviour and AWS behaviour cannot drift apart.

use crate::pipeline::{RecordProcessor, RecordResult};
use base64::Engine as _;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// One record of an invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchRecord {
    /// The id Firehose gives the record; the response must echo it exactly once.
    pub record_id: String,
    /// When Firehose received the record, in milliseconds since the Unix epoch.
    pub arrival_ms: i64,
    /// The record's bytes.
    pub data: bytes::Bytes,
}

/// The result for one record of an invocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchResult {
    /// The echoed record id.
    pub record_id: String,
    /// What became of the record.
    pub result: RecordResult,
}

/// Why a whole invocation failed (it is retried, then every record of the batch fails).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvocationError {
    /// The response has no result for these ids (`Lambda.MissingRecordId`).
    MissingRecordId(Vec<String>),
    /// The response has several results for these ids (`Lambda.DuplicatedRecordId`).
    DuplicatedRecordId(Vec<String>),
    /// The response names ids that were not in the request (`Lambda.MissingRecordId`).
    UnknownRecordId(Vec<String>),
    /// The function itself failed: an error, a panic or a timeout (`Lambda.FunctionError`).
    FunctionError(String),
}

impl InvocationError {
    /// The error code Firehose reports (Amazon Data Firehose, Data transformation and status model: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>; Amazon Data Firehose, Handle failure in data transformation: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>).
    pub fn code(&self) -> &'static str {
        match self {
            InvocationError::MissingRecordId(_) | InvocationError::UnknownRecordId(_) => {
                "Lambda.MissingRecordId"
            }
            InvocationError::DuplicatedRecordId(_) => "Lambda.DuplicatedRecordId",
            InvocationError::FunctionError(_) => "Lambda.FunctionError",
        }
    }
}

impl fmt::Display for InvocationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvocationError::MissingRecordId(ids) => {
                write!(
                    f,
                    "One or more record IDs were not returned: {}",
                    ids.join(", ")
                )
            }
            InvocationError::DuplicatedRecordId(ids) => write!(
                f,
                "Multiple records were returned with the same record ID: {}",
                ids.join(", ")
            ),
            InvocationError::UnknownRecordId(ids) => {
                write!(
                    f,
                    "Record IDs that were not sent were returned: {}",
                    ids.join(", ")
                )
            }
            InvocationError::FunctionError(m) => write!(f, "The Lambda function failed: {m}"),
        }
    }
}

impl std::error::Error for InvocationError {}

/// What an [`Invoker`] returns: the response, or why the invocation failed.
pub type InvokeFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Vec<BatchResult>, InvocationError>> + Send + 'a>,
>;

/// Something Firehose can invoke with a batch: the transform's Lambda function. The local
/// engine uses the delivery's own processor; tests wrap it to inject failures (an invocation
/// that errors, times out, or answers with missing or repeated record ids).
pub trait Invoker: Send + Sync {
    /// One invocation.
    fn invoke<'a>(&'a self, records: &'a [BatchRecord]) -> InvokeFuture<'a>;

    /// The record processor this invoker runs in-process, if that is all it does
    /// (the local engine's `LocalInvoker`): the engine then runs batches through it
    /// directly, on as many threads as pay off, with no record ids to make and check (such an
    /// invocation answers every record exactly once, in order, by construction). `None` (the
    /// default) sends every batch through [`Invoker::invoke`].
    fn in_process(&self) -> Option<&Arc<dyn RecordProcessor>> {
        None
    }
}

/// Runs a batch through a record processor: one result per record, in order. This is the
/// body of the transform, locally and in the generated Lambda handler.
pub async fn invoke_batch(
    processor: &dyn RecordProcessor,
    records: &[BatchRecord],
) -> Vec<BatchResult> {
    let mut out = Vec::with_capacity(records.len());
    for r in records {
        let result = processor.process(&r.data).result().await;
        out.push(BatchResult {
            record_id: r.record_id.clone(),
            result,
        });
    }
    out
}

/// Checks that a response answers every request id exactly once (Amazon Data Firehose, Data transformation and status model: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>).
///
/// # Errors
/// The first kind of mismatch found, with the offending ids.
pub fn validate_response(
    request: &[BatchRecord],
    response: &[BatchResult],
) -> Result<(), InvocationError> {
    // The common case, and the local invoker's: every id once, in request order.
    if request.len() == response.len()
        && request
            .iter()
            .zip(response)
            .all(|(a, b)| a.record_id == b.record_id)
    {
        return Ok(());
    }
    let sent: HashSet<&str> = request.iter().map(|r| r.record_id.as_str()).collect();
    let mut seen: HashSet<&str> = HashSet::with_capacity(response.len());
    let mut duplicated = Vec::new();
    let mut unknown = Vec::new();
    for r in response {
        if !sent.contains(r.record_id.as_str()) {
            unknown.push(r.record_id.clone());
        } else if !seen.insert(r.record_id.as_str()) {
            duplicated.push(r.record_id.clone());
        }
    }
    if !duplicated.is_empty() {
        return Err(InvocationError::DuplicatedRecordId(duplicated));
    }
    if !unknown.is_empty() {
        return Err(InvocationError::UnknownRecordId(unknown));
    }
    let missing: Vec<String> = request
        .iter()
        .filter(|r| !seen.contains(r.record_id.as_str()))
        .map(|r| r.record_id.clone())
        .collect();
    if !missing.is_empty() {
        return Err(InvocationError::MissingRecordId(missing));
    }
    Ok(())
}

/// A `processing-failed` error document, as Firehose writes it under the error prefix
/// (Amazon Data Firehose, Handle failure in data transformation: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>). Numbers are written as JSON numbers, as in Firehose's other failure
/// documents; AWS shows only placeholders for their types, so docs/engine.md says what kpipe chose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDocument {
    /// Invocation attempts made.
    pub attempts_made: u32,
    /// When Firehose received the record (epoch ms).
    pub arrival_timestamp: i64,
    /// The error code (`Lambda.FunctionError`, `Lambda.ProcessingFailedStatus`, ...).
    pub error_code: String,
    /// The error message.
    pub error_message: String,
    /// When Firehose stopped trying (epoch ms).
    pub attempt_ending_timestamp: i64,
    /// The original record, base64.
    pub raw_data: String,
    /// The transform's function ARN, when a transform was involved.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda_arn: Option<String>,
}

impl ErrorDocument {
    /// A document for one record.
    pub fn new(
        raw: &[u8],
        arrival_ms: i64,
        attempts_made: u32,
        error_code: &str,
        error_message: impl Into<String>,
        ending_ms: i64,
        lambda_arn: Option<String>,
    ) -> Self {
        ErrorDocument {
            attempts_made,
            arrival_timestamp: arrival_ms,
            error_code: error_code.to_owned(),
            error_message: error_message.into(),
            attempt_ending_timestamp: ending_ms,
            raw_data: base64::engine::general_purpose::STANDARD.encode(raw),
            lambda_arn,
        }
    }

    /// The document as one JSON line (with the trailing newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("error documents serialise");
        line.push(b'\n');
        line
    }
}

/// A `format-conversion-failed` error document: a record Firehose could not convert to
/// Parquet or ORC ("Handling errors for data format conversion",
/// <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion-error-handling.html>).
/// The sequence numbers are those of a Kinesis source record; the local engine does not
/// carry them to the S3 stage and leaves them out (docs/engine.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversionErrorDocument {
    /// Conversion attempts made.
    pub attempts_made: u32,
    /// When Firehose received the record (epoch ms).
    pub arrival_timestamp: i64,
    /// The error code ([`FORMAT_CONVERSION_CODE`]).
    pub last_error_code: String,
    /// Why the record did not convert.
    pub last_error_message: String,
    /// When Firehose stopped trying (epoch ms).
    pub attempt_ending_timestamp: i64,
    /// The record, base64.
    pub raw_data: String,
    /// The Kinesis sequence number of the source record, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence_number: Option<String>,
    /// The KPL sub-sequence number of the source record, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_sequence_number: Option<u64>,
    /// The Glue table the record was converted against.
    pub data_catalog_table: DataCatalogTable,
}

/// The Glue table of a [`ConversionErrorDocument`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataCatalogTable {
    /// The catalog's id (the account).
    pub catalog_id: String,
    /// The database.
    pub database_name: String,
    /// The table.
    pub table_name: String,
    /// The region.
    pub region: String,
    /// The table version (`LATEST`, as Firehose's schema configuration reads it).
    pub version_id: String,
    /// The catalog's ARN.
    pub catalog_arn: String,
}

impl ConversionErrorDocument {
    /// The document as one JSON line (with the trailing newline).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).expect("error documents serialise");
        line.push(b'\n');
        line
    }
}

/// The error code kpipe writes for a record that does not match the Glue table's columns
/// (AWS does not list the codes; docs/engine.md).
pub const FORMAT_CONVERSION_CODE: &str = "DataFormatConversion.MalformedData";

/// The error code of a record the transform answered `ProcessingFailed` for.
pub const PROCESSING_FAILED_CODE: &str = "Lambda.ProcessingFailedStatus";

#[cfg(test)]
mod tests {
    use super::*;

    fn req(ids: &[&str]) -> Vec<BatchRecord> {
        ids.iter()
            .map(|id| BatchRecord {
                record_id: (*id).to_owned(),
                arrival_ms: 0,
                data: bytes::Bytes::new(),
            })
            .collect()
    }

    fn resp(ids: &[&str]) -> Vec<BatchResult> {
        ids.iter()
            .map(|id| BatchResult {
                record_id: (*id).to_owned(),
                result: RecordResult::Dropped,
            })
            .collect()
    }

    #[test]
    fn a_response_must_echo_every_id_exactly_once() {
        assert_eq!(
            validate_response(&req(&["a", "b"]), &resp(&["b", "a"])),
            Ok(())
        );
        assert_eq!(
            validate_response(&req(&["a", "b"]), &resp(&["a"])),
            Err(InvocationError::MissingRecordId(vec!["b".into()]))
        );
        assert_eq!(
            validate_response(&req(&["a", "b"]), &resp(&["a", "a", "b"])),
            Err(InvocationError::DuplicatedRecordId(vec!["a".into()]))
        );
        let err = validate_response(&req(&["a"]), &resp(&["a", "z"])).unwrap_err();
        assert_eq!(err.code(), "Lambda.MissingRecordId");
    }

    #[test]
    fn error_documents_have_firehose_field_names() {
        let doc = ErrorDocument::new(b"hi", 1, 4, "Lambda.FunctionError", "boom", 2, None);
        let line = String::from_utf8(doc.to_line()).unwrap();
        assert_eq!(
            line,
            "{\"attemptsMade\":4,\"arrivalTimestamp\":1,\"errorCode\":\"Lambda.FunctionError\",\"errorMessage\":\"boom\",\"attemptEndingTimestamp\":2,\"rawData\":\"aGk=\"}\n"
        );
    }
}
