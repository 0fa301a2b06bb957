//! [`ast`](crate::ast) to [`model`](crate::model): keys read, units converted, AWS's
//! defaults applied, stage names resolved. Every problem is collected; what is wrong gets
//! a fallback value so the later phases still see the whole pipeline.
//!
//! This file holds the pipeline itself, AWS's defaults and the key reader every stage uses;
//! each kind of stage is lowered in a file of its own (`stream.rs`, `transform.rs`, `s3.rs`,
//! `delivery.rs`, `consumer.rs`), with the list of its keys. The parser gives each kind its
//! own signature ([`SigAst`]), so each lowering gets exactly its parts.

use crate::ast::{FieldAst, PipelineAst, SigAst, StageAst, StageKind};
use crate::diagnostic::{Diagnostics, did_you_mean};
use crate::model::*;
use crate::value::{self, MIB};
use proc_macro2::Ident;
use std::collections::BTreeMap;

mod consumer;
mod delivery;
mod s3;
mod stream;
mod transform;

use self::consumer::consumer;
use self::delivery::delivery;
use self::s3::s3;
use self::stream::stream;
use self::transform::transform;

// ===== AWS defaults, each with its documentation page =====

/// Kinesis default retention, 24 h (Kinesis Data Streams, Change the data retention period: <https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html>).
pub(crate) const DEFAULT_RETENTION_HOURS: u64 = 24;
/// Kinesis default maximum record size, 1 MiB (Kinesis Data Streams, Handle large records: <https://docs.aws.amazon.com/streams/latest/dev/large-records.html>; Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub(crate) const DEFAULT_MAX_RECORD_KIB: u64 = 1024;
/// S3 buffering hints default 5 MiB / 300 s (Amazon Data Firehose, Configure buffering hints: <https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html>).
pub(crate) const DEFAULT_S3_BUFFER_BYTES: u64 = 5 * MIB;
pub(crate) const DEFAULT_S3_BUFFER_SECS: u64 = 300;
/// With record format conversion the S3 buffer is at least 64 MiB and 128 MiB by default
/// (Amazon Data Firehose, Convert input data format: <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html>).
pub(crate) const DEFAULT_CONVERSION_BUFFER_BYTES: u64 = 128 * MIB;
pub(crate) const MIN_CONVERSION_BUFFER_BYTES: u64 = 64 * MIB;
/// Lambda processor defaults 1 MB / 60 s, 3 retries (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>).
pub(crate) const DEFAULT_PROCESSOR_BUFFER_BYTES: u64 = MIB;
pub(crate) const DEFAULT_PROCESSOR_BUFFER_SECS: u64 = 60;
pub(crate) const DEFAULT_RETRIES: u64 = 3;
/// Lambda function defaults of AWS's Firehose processing blueprint: 128 MB, 3 s
/// (AWS Python blueprint kinesis-firehose-process-record-python: <https://github.com/amazon-archives/serverless-app-examples/tree/master/python/kinesis-firehose-process-record-python>, SAM template).
pub(crate) const DEFAULT_LAMBDA_MEMORY_MIB: u64 = 128;
pub(crate) const DEFAULT_LAMBDA_TIMEOUT_SECS: u64 = 3;
/// Kinesis event source mapping defaults: 100 records per batch, no batching window, one
/// batch per shard at a time
/// (<https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html>).
pub(crate) const DEFAULT_CONSUMER_BATCH_SIZE: u64 = 100;
pub(crate) const DEFAULT_CONSUMER_BATCH_WINDOW_SECS: u64 = 0;
pub(crate) const DEFAULT_CONSUMER_PARALLELIZATION: u64 = 1;
/// The AWS-managed Kinesis key used by `encryption: kms` (Kinesis API, StartStreamEncryption: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_StartStreamEncryption.html>).
pub(crate) const AWS_MANAGED_KINESIS_KEY: &str = "alias/aws/kinesis";

// ===== keys =====

const PIPELINE_KEYS: &[&str] = &["region", "tags"];

/// Stage names that would collide with items kpipe generates on the pipeline type, or with
/// the `direct` source of a delivery.
pub(crate) const RESERVED_STAGE_NAMES: &[&str] = &[
    "direct",
    "spec",
    "deliveries",
    "local",
    "aws",
    "cloudformation",
    "main",
    "handler",
    "lambda_main",
];

/// Reads a block's fields into a map, reporting unknown keys (with "did you mean") and
/// duplicates (with "first defined here"). The first occurrence wins.
fn keyed<'a>(
    d: &mut Diagnostics,
    fields: &'a [FieldAst],
    known: &[&str],
    what: &str,
) -> BTreeMap<String, &'a FieldAst> {
    let mut map: BTreeMap<String, &'a FieldAst> = BTreeMap::new();
    for f in fields {
        if let Some(q) = &f.quoted {
            d.error(
                q.span(),
                format!(
                    "expected a setting name in {what}, found the string {:?}",
                    q.value()
                ),
            )
            .note("note: only tag keys may be quoted (`tags: { \"cost-center\": \"42\" }`)");
            continue;
        }
        let key = f.key.to_string();
        if !known.contains(&key.as_str()) {
            let e = d.error(f.key.span(), format!("unknown key `{key}` in {what}"));
            match did_you_mean(&key, known.iter().copied()) {
                Some(s) => e.note(format!("help: did you mean `{s}`?")),
                None => e.note(format!(
                    "note: expected one of {}",
                    known
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            };
            continue;
        }
        if let Some(first) = map.get(&key) {
            d.error(f.key.span(), format!("duplicate key `{key}` in {what}"))
                .related(first.key.span(), "first defined here");
            continue;
        }
        map.insert(key, f);
    }
    map
}

/// `SensorLake` / `sensor_lake` -> `sensor-lake`.
pub(crate) fn kebab(ident: &Ident) -> String {
    let s = ident.to_string();
    let s = s.strip_prefix("r#").unwrap_or(&s);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if c == '_' {
            out.push('-');
        } else if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn default_name(ident: &Ident) -> Sp<String> {
    Sp::new(kebab(ident), ident.span())
}

/// Lowers one pipeline.
pub(crate) fn pipeline(d: &mut Diagnostics, def: &PipelineAst) -> Pipeline {
    let what = format!("pipeline `{}`", def.name);
    let keys = keyed(d, &def.fields, PIPELINE_KEYS, &what);
    let region = keys.get("region").and_then(|f| value::string(d, f));
    let tags = keys
        .get("tags")
        .map(|f| value::tags(d, f))
        .unwrap_or_default();

    let mut p = Pipeline {
        attrs: def.attrs.clone(),
        vis: def.vis.clone(),
        ident: def.name.clone(),
        region,
        tags,
        streams: Vec::new(),
        transforms: Vec::new(),
        destinations: Vec::new(),
        deliveries: Vec::new(),
        consumers: Vec::new(),
    };

    // Names are resolved across all kinds: one namespace per pipeline.
    let mut names: BTreeMap<String, (StageKind, usize, Ident)> = BTreeMap::new();
    let mut delivery_defs = Vec::new();
    let mut consumer_defs = Vec::new();
    for stage in &def.stages {
        let name = stage.name.to_string();
        if let Some((kind, _, first)) = names.get(&name) {
            d.error(stage.name.span(), format!("duplicate stage name `{name}`"))
                .related(
                    first.span(),
                    format!("first defined here, as {}", kind.with_article()),
                );
            continue;
        }
        if RESERVED_STAGE_NAMES.contains(&name.as_str()) {
            d.error(stage.name.span(), format!("`{name}` is reserved and cannot name a stage"))
                .note("note: kpipe generates items with this name on the pipeline type, or uses it as a delivery source");
            continue;
        }
        // Deliveries and consumers refer to other stages: lowered once every name is known.
        let index = match &stage.sig {
            SigAst::Stream(ty) => {
                p.streams.push(stream(d, stage, ty));
                p.streams.len() - 1
            }
            SigAst::Transform(input, output) => {
                p.transforms
                    .push(transform(d, &def.name, stage, input, output));
                p.transforms.len() - 1
            }
            SigAst::S3(ty) => {
                p.destinations.push(s3(d, stage, ty));
                p.destinations.len() - 1
            }
            SigAst::Delivery(route) => {
                delivery_defs.push((stage, route));
                delivery_defs.len() - 1
            }
            SigAst::Consumer(source, function) => {
                consumer_defs.push((stage, source, function));
                consumer_defs.len() - 1
            }
        };
        names.insert(name, (stage.kind(), index, stage.name.clone()));
    }
    for (stage, route) in delivery_defs {
        let delivery = delivery(d, stage, route, &names);
        p.deliveries.push(delivery);
    }
    for (stage, source, function) in consumer_defs {
        let consumer = consumer(d, &def.name, stage, source, function, &names);
        p.consumers.push(consumer);
    }
    p
}

fn body(stage: &StageAst) -> &[FieldAst] {
    stage.body.as_deref().unwrap_or(&[])
}

/// `help` is the whole help line, e.g. "add `bucket: \"my-bucket\"`".
fn missing(d: &mut Diagnostics, stage: &StageAst, key: &str, help: &str) {
    // A misspelt key (`bukcet`) already got "unknown key ... did you mean `bucket`?": one
    // mistake, one error.
    let misspelt = body(stage).iter().any(|f| {
        let written = f.key.to_string();
        written != key && did_you_mean(&written, [key]).is_some()
    });
    if misspelt || stage.broken {
        return;
    }
    d.error(
        stage.name.span(),
        format!(
            "missing `{key}` in {} `{}`",
            stage.kind().noun(),
            stage.name
        ),
    )
    .note(format!("help: {help}"));
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::format_ident;

    #[test]
    fn kebab_case_names() {
        assert_eq!(kebab(&format_ident!("sensor_lake")), "sensor-lake");
        assert_eq!(kebab(&format_ident!("SensorLake")), "sensor-lake");
        assert_eq!(kebab(&format_ident!("Telemetry")), "telemetry");
    }
}
