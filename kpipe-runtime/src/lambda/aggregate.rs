//! KPL aggregates in a Firehose event (KPL aggregation format: <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>).

use crate::pipeline::{Appended, BoxFuture, RecordProcessor, RecordResult};
use std::sync::Arc;

/// A KPL aggregate (KPL aggregation format: <https://github.com/awslabs/amazon-kinesis-producer/blob/master/aggregation-format.md>) is one record to Firehose, so it gets one result: its
/// user records are processed in order; their outputs are concatenated; it fails if one fails
/// or if they map to different partitions, and is dropped if all are dropped. When a user
/// record waits on an async transform, the rest of the aggregate goes on in the returned
/// future.
pub(super) fn aggregated(
    processor: &Arc<dyn RecordProcessor>,
    subs: Vec<Vec<u8>>,
    out: &mut Vec<u8>,
) -> Appended {
    let start = out.len();
    let mut keys = None;
    let mut subs = subs.into_iter();
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
