//! The transform stage of a delivery: batches by the processor's size-or-interval hints,
//! invocations with retries, and the invoker that runs the delivery's own processor.

use super::{PROCESSING_FAILED, State};
use crate::firehose::{self, BatchRecord, ErrorDocument, Invoker};
use crate::pipeline::guard::CatchUnwind;
use crate::pipeline::{RecordProcessor, RecordResult};
use std::collections::HashMap;
use std::sync::Arc;

impl State {
    /// Invokes the transform with the current batch, retrying a failed invocation
    /// `retries` times (Amazon Data Firehose, Handle failure in data transformation: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-failure-handling.html>).
    pub(super) async fn invoke(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        self.batch_deadline = None;
        if batch.is_empty() {
            return;
        }
        let Some((spec, invoker)) = self.task.transform.clone() else {
            return;
        };
        self.tr.received += batch.len() as u64;
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
                for (rec, result) in batch.into_iter().zip(results) {
                    match result {
                        Some(RecordResult::Ok {
                            data,
                            partition_keys,
                        }) => {
                            self.tr.ok += 1;
                            self.deliver_record(data, partition_keys, rec.arrival_ms);
                        }
                        Some(RecordResult::Dropped) => {
                            self.tr.dropped += 1;
                            self.report.dropped += 1;
                        }
                        Some(RecordResult::Failed(message)) => {
                            self.fail_transform(
                                &rec,
                                attempts,
                                firehose::PROCESSING_FAILED_CODE,
                                message,
                                now,
                            );
                        }
                        // validate_response guarantees every id is answered.
                        None => self.fail_transform(
                            &rec,
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
                    self.fail_transform(rec, attempts, e.code(), e.to_string(), now);
                }
            }
        }
    }

    pub(super) fn fail_transform(
        &mut self,
        rec: &BatchRecord,
        attempts: u32,
        code: &str,
        message: String,
        now: i64,
    ) {
        self.tr.failed += 1;
        self.report.failed += 1;
        let doc = ErrorDocument::new(
            &rec.data,
            rec.arrival_ms,
            attempts,
            code,
            message,
            now,
            self.task.lambda_arn.clone(),
        );
        self.write_error(PROCESSING_FAILED, doc.to_line(), rec.arrival_ms);
    }
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
}
