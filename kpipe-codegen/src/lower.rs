//! [`ast`](crate::ast) to [`model`](crate::model): keys read, units converted, AWS's
//! defaults applied, stage names resolved. Every problem is collected; what is wrong gets
//! a fallback value so the later phases still see the whole pipeline.

use crate::ast::{FieldDef, PipelineDef, SigDef, StageDef, StageKind, ValueDef};
use crate::diagnostic::{Diagnostics, Range, did_you_mean};
use crate::model::*;
use crate::prefix::Prefix;
use crate::value::{self, MIB};
use proc_macro2::Ident;
use std::collections::BTreeMap;

// ===== AWS defaults, each with its documentation page =====

/// Kinesis default retention, 24 h (Kinesis Data Streams, Change the data retention period: <https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html>).
pub(crate) const DEFAULT_RETENTION_HOURS: u64 = 24;
/// Kinesis default maximum record size, 1 MiB (Kinesis Data Streams, Handle large records: <https://docs.aws.amazon.com/streams/latest/dev/large-records.html>; Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>).
pub(crate) const DEFAULT_MAX_RECORD_KIB: u64 = 1024;
/// S3 buffering hints default 5 MiB / 300 s (Amazon Data Firehose, Configure buffering hints: <https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html>).
pub(crate) const DEFAULT_S3_BUFFER_BYTES: u64 = 5 * MIB;
pub(crate) const DEFAULT_S3_BUFFER_SECS: u64 = 300;
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
const STREAM_KEYS: &[&str] = &[
    "name",
    "capacity",
    "retention",
    "partition_key",
    "explicit_hash_key",
    "max_record_size",
    "encryption",
    "tags",
];
const TRANSFORM_KEYS: &[&str] = &["function", "buffer", "retries", "lambda"];
const LAMBDA_KEYS: &[&str] = &["name", "memory", "timeout", "architecture", "bin"];
const S3_KEYS: &[&str] = &[
    "bucket",
    "create_bucket",
    "prefix",
    "error_prefix",
    "buffer",
    "compression",
    "file_extension",
    "time_zone",
    "partition_keys",
    "newline",
    "encryption",
];
const DELIVERY_KEYS: &[&str] = &["name", "role_arn", "tags", "encryption", "s3_backup"];
const CONSUMER_KEYS: &[&str] = &[
    "batch_size",
    "starting_position",
    "bisect_on_error",
    "maximum_retries",
    "maximum_record_age",
    "batch_window",
    "parallelization",
    "on_failure",
    "filter_criteria",
    "tumbling_window",
    "lambda",
];

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
    fields: &'a [FieldDef],
    known: &[&str],
    what: &str,
) -> BTreeMap<String, &'a FieldDef> {
    let mut map: BTreeMap<String, &'a FieldDef> = BTreeMap::new();
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
pub(crate) fn pipeline(d: &mut Diagnostics, def: &PipelineDef) -> Pipeline {
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
        sinks: Vec::new(),
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
        let index = match stage.kind {
            StageKind::Stream => {
                p.streams.push(stream(d, stage));
                p.streams.len() - 1
            }
            StageKind::Transform => {
                p.transforms.push(transform(d, &def.name, stage));
                p.transforms.len() - 1
            }
            StageKind::S3 => {
                p.sinks.push(s3(d, stage));
                p.sinks.len() - 1
            }
            StageKind::Delivery => {
                delivery_defs.push(stage);
                delivery_defs.len() - 1
            }
            StageKind::Consumer => {
                consumer_defs.push(stage);
                consumer_defs.len() - 1
            }
        };
        names.insert(name, (stage.kind, index, stage.name.clone()));
    }
    for stage in delivery_defs {
        let delivery = delivery(d, stage, &names);
        p.deliveries.push(delivery);
    }
    for stage in consumer_defs {
        let consumer = consumer(d, &def.name, stage, &names);
        p.consumers.push(consumer);
    }
    p
}

fn body(stage: &StageDef) -> &[FieldDef] {
    stage.body.as_deref().unwrap_or(&[])
}

fn record_type(stage: &StageDef) -> syn::Type {
    match &stage.sig {
        SigDef::Record(t) => (**t).clone(),
        _ => unreachable!("kpipe-codegen: the parser gives streams and s3 stages a record type"),
    }
}

/// `help` is the whole help line, e.g. "add `bucket: \"my-bucket\"`".
fn missing(d: &mut Diagnostics, stage: &StageDef, key: &str, help: &str) {
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
        format!("missing `{key}` in {} `{}`", stage.kind.noun(), stage.name),
    )
    .note(format!("help: {help}"));
}

fn stream(d: &mut Diagnostics, stage: &StageDef) -> Stream {
    let what = format!("stream `{}`", stage.name);
    let keys = keyed(d, body(stage), STREAM_KEYS, &what);
    let name = keys
        .get("name")
        .and_then(|f| value::string(d, f))
        .unwrap_or_else(|| default_name(&stage.name));
    let capacity = match keys.get("capacity") {
        Some(f) => capacity(d, f),
        None => {
            missing(
                d,
                stage,
                "capacity",
                "add `capacity: on_demand` or `capacity: provisioned(shards: 2)`",
            );
            None
        }
    };
    let retention_hours = match keys.get("retention").and_then(|f| value::duration(d, f)) {
        Some(secs) if secs.value % 3600 != 0 => {
            d.error(
                secs.range,
                "retention is set in whole hours, like `24h` or `7d`",
            );
            Sp::new(DEFAULT_RETENTION_HOURS, secs.range)
        }
        Some(secs) => Sp::new(secs.value / 3600, secs.range),
        None => Sp::new(DEFAULT_RETENTION_HOURS, stage.name.span()),
    };
    let partition_key = match keys.get("partition_key") {
        Some(f) => value::key_expr(d, f, true),
        None => {
            missing(
                d,
                stage,
                "partition_key",
                "add `partition_key: field_name`, a closure like `|r: &Record| r.id.clone()`, or `random`",
            );
            None
        }
    };
    let explicit_hash_key = keys.get("explicit_hash_key").and_then(|f| match &f.value {
        ValueDef::Closure(c) => Some(c.clone()),
        _ => {
            d.error(f.key.span(), "`explicit_hash_key` takes a closure returning a `u128`, like `|r: &Record| r.hash`");
            None
        }
    });
    let max_record_kib = match keys.get("max_record_size").and_then(|f| value::size(d, f)) {
        Some(b) if b.value % value::KIB != 0 => {
            d.error(b.range, "`max_record_size` is set in whole KiB");
            Sp::new(DEFAULT_MAX_RECORD_KIB, b.range)
        }
        Some(b) => Sp::new(b.value / value::KIB, b.range),
        None => Sp::new(DEFAULT_MAX_RECORD_KIB, stage.name.span()),
    };
    // Encrypted with the AWS-managed key unless the declaration says `encryption: none`
    // (the console's default is no encryption; kpipe's is safer, and the key is free:
    // "Costs, Regions, and performance considerations",
    // <https://docs.aws.amazon.com/streams/latest/dev/costs-performance.html>).
    let kms_key = match keys.get("encryption") {
        Some(f) => encryption(d, f),
        None => Some(Sp::new(
            AWS_MANAGED_KINESIS_KEY.to_owned(),
            stage.name.span(),
        )),
    };
    let tags = keys
        .get("tags")
        .map(|f| value::tags(d, f))
        .unwrap_or_default();
    Stream {
        attrs: stage.attrs.clone(),
        ident: stage.name.clone(),
        record: record_type(stage),
        name,
        capacity,
        retention_hours,
        partition_key,
        explicit_hash_key,
        max_record_kib,
        kms_key,
        tags,
    }
}

// `on_demand` | `provisioned(shards: N)`
fn capacity(d: &mut Diagnostics, f: &FieldDef) -> Option<Sp<Capacity>> {
    let ValueDef::Tokens(t) = &f.value else {
        d.error(
            f.key.span(),
            "expected `on_demand` or `provisioned(shards: N)`",
        );
        return None;
    };
    let range = Range::of(t);
    if let Ok(ident) = syn::parse2::<Ident>(t.clone()) {
        if ident == "on_demand" {
            return Some(Sp::new(Capacity::OnDemand, range));
        }
        if ident == "provisioned" {
            d.error(
                ident.span(),
                "`provisioned` needs a shard count: `provisioned(shards: 2)`",
            );
            return None;
        }
    }
    // `provisioned(shards: 2)` is not a Rust expression; read it token by token.
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    if let [
        proc_macro2::TokenTree::Ident(kw),
        proc_macro2::TokenTree::Group(g),
    ] = tts.as_slice()
        && kw == "provisioned"
        && g.delimiter() == proc_macro2::Delimiter::Parenthesis
    {
        let inner = syn::parse::Parser::parse2(crate::parse::fields, g.stream());
        match inner {
            Ok(fields) => {
                let keys = keyed(d, &fields, &["shards"], "`provisioned(...)`");
                return match keys.get("shards") {
                    Some(sf) => value::integer(d, sf)
                        .map(|shards| Sp::new(Capacity::Provisioned { shards }, range)),
                    None => {
                        d.error(g.span(), "expected `shards: N` in `provisioned(...)`");
                        None
                    }
                };
            }
            Err(e) => {
                d.syn(e);
                return None;
            }
        }
    }
    let e = d.error(
        range,
        "expected `on_demand` or `provisioned(shards: N)` for `capacity`",
    );
    if let Some(proc_macro2::TokenTree::Ident(i)) = tts.first()
        && let Some(s) = did_you_mean(&i.to_string(), ["on_demand", "provisioned"])
    {
        e.note(format!("help: did you mean `{s}`?"));
    }
    None
}

// `none` | `kms` | `kms("key id, alias or ARN")`
fn encryption(d: &mut Diagnostics, f: &FieldDef) -> Option<Sp<String>> {
    let ValueDef::Tokens(t) = &f.value else {
        d.error(f.key.span(), "expected `none`, `kms` or `kms(\"key\")`");
        return None;
    };
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    match tts.as_slice() {
        [proc_macro2::TokenTree::Ident(i)] if i == "none" => None,
        [proc_macro2::TokenTree::Ident(i)] if i == "kms" => {
            Some(Sp::new(AWS_MANAGED_KINESIS_KEY.to_owned(), i.span()))
        }
        [
            proc_macro2::TokenTree::Ident(i),
            proc_macro2::TokenTree::Group(g),
        ] if i == "kms" => match syn::parse2::<syn::LitStr>(g.stream()) {
            Ok(s) => Some(Sp::new(s.value(), s.span())),
            Err(_) => {
                d.error(
                    g.span(),
                    "expected a KMS key id, alias or ARN as a string: `kms(\"alias/my-key\")`",
                );
                None
            }
        },
        _ => {
            d.error_spanned(
                t,
                "expected `none`, `kms` or `kms(\"key\")` for `encryption`",
            );
            None
        }
    }
}

// `none` | `aws_owned` | `kms("arn:aws:kms:...")` (Firehose's DeliveryStreamEncryptionConfiguration
// takes a key ARN, not an alias).
fn delivery_encryption(d: &mut Diagnostics, f: &FieldDef) -> Option<Sp<DeliveryEncryption>> {
    let expected =
        "expected `none`, `aws_owned` or `kms(\"arn:aws:kms:...\")` for a delivery's `encryption`";
    let ValueDef::Tokens(t) = &f.value else {
        d.error(f.key.span(), expected);
        return None;
    };
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    match tts.as_slice() {
        [proc_macro2::TokenTree::Ident(i)] if i == "none" => {
            Some(Sp::new(DeliveryEncryption::None, i.span()))
        }
        [proc_macro2::TokenTree::Ident(i)] if i == "aws_owned" => {
            Some(Sp::new(DeliveryEncryption::AwsOwned, i.span()))
        }
        [
            proc_macro2::TokenTree::Ident(i),
            proc_macro2::TokenTree::Group(g),
        ] if i == "kms" => match syn::parse2::<syn::LitStr>(g.stream()) {
            Ok(s) if s.value().starts_with("arn:") && s.value().contains(":key/") => {
                Some(Sp::new(DeliveryEncryption::Kms(s.value()), s.span()))
            }
            _ => {
                d.error(
                    g.span(),
                    "expected a KMS key ARN as a string: `kms(\"arn:aws:kms:us-west-2:123456789012:key/...\")`",
                )
                .note("note: Firehose takes the key's ARN, not an alias (Firehose API, DeliveryStreamEncryptionConfigurationInput: https://docs.aws.amazon.com/firehose/latest/APIReference/API_DeliveryStreamEncryptionConfigurationInput.html)");
                None
            }
        },
        _ => {
            d.error_spanned(t, expected);
            None
        }
    }
}

fn transform(d: &mut Diagnostics, pipeline: &Ident, stage: &StageDef) -> Transform {
    let what = format!("transform `{}`", stage.name);
    let keys = keyed(d, body(stage), TRANSFORM_KEYS, &what);
    let (input, output) = match &stage.sig {
        SigDef::Map(a, b) => ((**a).clone(), (**b).clone()),
        _ => unreachable!("kpipe-codegen: the parser gives transforms a map signature"),
    };
    let function = match keys.get("function") {
        Some(f) => match &f.value {
            ValueDef::Closure(c) => Some(c.clone()),
            ValueDef::Tokens(t) => match syn::parse2::<syn::ExprPath>(t.clone()) {
                Ok(p) => Some(Box::new(syn::Expr::Path(p))),
                Err(_) => {
                    d.error_spanned(
                        t,
                        "expected a function path like `crate::enrich`, or a closure",
                    );
                    None
                }
            },
            ValueDef::Block(span, _) => {
                d.error(
                    *span,
                    "expected a function path like `crate::enrich`, or a closure",
                );
                None
            }
        },
        None => {
            missing(d, stage, "function", "add `function: crate::my_function`");
            None
        }
    };
    let (bytes, secs) = keys
        .get("buffer")
        .map(|f| value::buffer(d, f))
        .unwrap_or_default();
    let buffer = Buffer {
        bytes: bytes.unwrap_or(Sp::new(DEFAULT_PROCESSOR_BUFFER_BYTES, stage.name.span())),
        seconds: secs.unwrap_or(Sp::new(DEFAULT_PROCESSOR_BUFFER_SECS, stage.name.span())),
    };
    let retries = keys
        .get("retries")
        .and_then(|f| value::integer(d, f))
        .unwrap_or(Sp::new(DEFAULT_RETRIES, stage.name.span()));
    let lambda = lambda(d, pipeline, stage, keys.get("lambda").copied(), &what);
    Transform {
        attrs: stage.attrs.clone(),
        ident: stage.name.clone(),
        input,
        output,
        function,
        buffer,
        retries,
        lambda,
    }
}

/// The `lambda: { name, memory, timeout, architecture, bin }` settings of a transform or
/// consumer.
fn lambda(
    d: &mut Diagnostics,
    pipeline: &Ident,
    stage: &StageDef,
    field: Option<&FieldDef>,
    what: &str,
) -> Lambda {
    let lambda_fields = field.and_then(|f| value::block(d, f)).unwrap_or(&[]);
    let lk = keyed(
        d,
        lambda_fields,
        LAMBDA_KEYS,
        &format!("the `lambda` settings of {what}"),
    );
    let name = lk
        .get("name")
        .and_then(|f| value::string(d, f))
        .unwrap_or_else(|| {
            Sp::new(
                format!("{}-{}", kebab(pipeline), kebab(&stage.name)),
                stage.name.span(),
            )
        });
    let memory_mib = match lk.get("memory").and_then(|f| value::size(d, f)) {
        Some(b) if b.value % MIB != 0 => {
            d.error(b.range, "Lambda memory is set in whole MiB, like `512MiB`");
            Sp::new(DEFAULT_LAMBDA_MEMORY_MIB, b.range)
        }
        Some(b) => Sp::new(b.value / MIB, b.range),
        None => Sp::new(DEFAULT_LAMBDA_MEMORY_MIB, stage.name.span()),
    };
    let timeout_secs = lk
        .get("timeout")
        .and_then(|f| value::duration(d, f))
        .unwrap_or(Sp::new(DEFAULT_LAMBDA_TIMEOUT_SECS, stage.name.span()));
    let architecture = match lk
        .get("architecture")
        .and_then(|f| value::word(d, f, &["x86_64", "arm64"]))
    {
        Some(w) if w.value == "arm64" => Architecture::Arm64,
        _ => Architecture::X86_64,
    };
    // The crate's bin target that serves the stage (`lambda_main!`), which `apply` builds:
    // `<stage>_lambda` unless named.
    let bin = match lk.get("bin").and_then(|f| value::string(d, f)) {
        Some(b)
            if b.value.is_empty()
                || !b
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            d.error(
                b.range,
                "a bin target name has letters, digits, `_` and `-`, like `\"enrich_lambda\"`",
            );
            Sp::new(format!("{}_lambda", stage.name), b.range)
        }
        Some(b) => b,
        None => Sp::new(format!("{}_lambda", stage.name), stage.name.span()),
    };
    Lambda {
        name,
        memory_mib,
        timeout_secs,
        architecture,
        bin,
    }
}

fn consumer(
    d: &mut Diagnostics,
    pipeline: &Ident,
    stage: &StageDef,
    names: &BTreeMap<String, (StageKind, usize, Ident)>,
) -> Consumer {
    let what = format!("consumer `{}`", stage.name);
    let keys = keyed(d, body(stage), CONSUMER_KEYS, &what);
    let SigDef::Consume(stream_ident, function) = &stage.sig else {
        unreachable!("kpipe-codegen: the parser gives consumers a stream and a function");
    };
    let stream = match names.get(&stream_ident.to_string()) {
        Some((StageKind::Stream, index, _)) => Some((*index, stream_ident.clone())),
        Some((kind, _, def)) => {
            d.error(
                stream_ident.span(),
                format!(
                    "a consumer reads a stream, but `{stream_ident}` is {}",
                    kind.with_article()
                ),
            )
            .related(def.span(), format!("`{stream_ident}` is declared here"));
            None
        }
        None => {
            let e = d.error(
                stream_ident.span(),
                format!("cannot find stream `{stream_ident}` in this pipeline"),
            );
            let streams = names
                .iter()
                .filter(|(_, v)| v.0 == StageKind::Stream)
                .map(|(k, _)| k.as_str());
            match did_you_mean(&stream_ident.to_string(), streams) {
                Some(s) => e.note(format!("help: did you mean `{s}`?")),
                None => e.note(format!(
                    "help: declare it with `stream {stream_ident}: ...`"
                )),
            };
            None
        }
    };
    let batch_size = keys
        .get("batch_size")
        .and_then(|f| value::integer(d, f))
        .unwrap_or(Sp::new(DEFAULT_CONSUMER_BATCH_SIZE, stage.name.span()));
    let starting_position = match keys.get("starting_position") {
        Some(f) if at_timestamp_call(f) => at_timestamp(d, f).map(StartingPosition::AtTimestamp),
        Some(f) => match value::word(d, f, &["latest", "trim_horizon"]) {
            Some(w) if w.value == "trim_horizon" => Some(StartingPosition::TrimHorizon),
            Some(_) => Some(StartingPosition::Latest),
            None => None,
        },
        None => {
            missing(
                d,
                stage,
                "starting_position",
                "add `starting_position: latest` (records put from now on) or `starting_position: trim_horizon` (everything the stream still holds); AWS has no default for Kinesis",
            );
            None
        }
    };
    let maximum_retries = match keys.get("maximum_retries") {
        Some(f) => match &f.value {
            ValueDef::Tokens(t) if t.to_string() == "unlimited" => None,
            _ => value::integer(d, f),
        },
        None => None,
    };
    let maximum_record_age_secs = match keys.get("maximum_record_age") {
        Some(f) => match &f.value {
            ValueDef::Tokens(t) if t.to_string() == "unlimited" => None,
            _ => value::duration(d, f),
        },
        None => None,
    };
    let batch_window_secs = keys
        .get("batch_window")
        .and_then(|f| value::duration(d, f))
        .unwrap_or(Sp::new(
            DEFAULT_CONSUMER_BATCH_WINDOW_SECS,
            stage.name.span(),
        ));
    let parallelization = keys
        .get("parallelization")
        .and_then(|f| value::integer(d, f))
        .unwrap_or(Sp::new(DEFAULT_CONSUMER_PARALLELIZATION, stage.name.span()));
    Consumer {
        attrs: stage.attrs.clone(),
        ident: stage.name.clone(),
        stream,
        function: (**function).clone(),
        batch_size,
        starting_position,
        bisect_on_error: keys
            .get("bisect_on_error")
            .and_then(|f| value::boolean(d, f))
            .unwrap_or(false),
        maximum_retries,
        maximum_record_age_secs,
        batch_window_secs,
        parallelization,
        tumbling_window_secs: keys
            .get("tumbling_window")
            .and_then(|f| value::duration(d, f)),
        on_failure: keys.get("on_failure").and_then(|f| on_failure(d, f)),
        filters: keys
            .get("filter_criteria")
            .map(|f| filter_criteria(d, f))
            .unwrap_or_default(),
        lambda: lambda(d, pipeline, stage, keys.get("lambda").copied(), &what),
    }
}

// `sqs("queue")` | `sns("topic")` | `s3("bucket")`, each also taking an ARN ("Retain discarded
// batch records for a Kinesis Data Streams event source in Lambda",
// https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html).
fn on_failure(d: &mut Diagnostics, f: &FieldDef) -> Option<Sp<OnFailure>> {
    let expected =
        "expected `sqs(\"queue\")`, `sns(\"topic\")` or `s3(\"bucket\")` for `on_failure`";
    let ValueDef::Tokens(t) = &f.value else {
        d.error(f.key.span(), expected);
        return None;
    };
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    let [
        proc_macro2::TokenTree::Ident(kind),
        proc_macro2::TokenTree::Group(g),
    ] = tts.as_slice()
    else {
        d.error_spanned(t, expected);
        return None;
    };
    let make: fn(String) -> OnFailure = match kind.to_string().as_str() {
        "sqs" => OnFailure::Sqs,
        "sns" => OnFailure::Sns,
        "s3" => OnFailure::S3,
        _ => {
            d.error(kind.span(), expected);
            return None;
        }
    };
    match syn::parse2::<syn::LitStr>(g.stream()) {
        Ok(s) => Some(Sp::new(make(s.value()), s.span())),
        Err(_) => {
            d.error(
                g.span(),
                format!(
                    "expected the {kind} destination's name or ARN as a string: `{kind}(\"name\")`"
                ),
            );
            None
        }
    }
}

// `["{\"data\": {...}}", ...]`: Lambda event filtering patterns, as strings.
fn filter_criteria(d: &mut Diagnostics, f: &FieldDef) -> Vec<Sp<String>> {
    let expected = "expected a list of filter patterns: `filter_criteria: [r#\"{\"data\": {\"kind\": [\"alert\"]}}\"#]`";
    let ValueDef::Tokens(t) = &f.value else {
        d.error(f.key.span(), expected);
        return Vec::new();
    };
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    let [proc_macro2::TokenTree::Group(g)] = tts.as_slice() else {
        d.error_spanned(t, expected);
        return Vec::new();
    };
    if g.delimiter() != proc_macro2::Delimiter::Bracket {
        d.error(g.span(), expected);
        return Vec::new();
    }
    let parser = syn::punctuated::Punctuated::<syn::LitStr, syn::Token![,]>::parse_terminated;
    match syn::parse::Parser::parse2(parser, g.stream()) {
        Ok(list) => list
            .into_iter()
            .map(|s| Sp::new(s.value(), s.span()))
            .collect(),
        Err(e) => {
            d.error(e.span(), expected);
            Vec::new()
        }
    }
}

fn at_timestamp_call(f: &FieldDef) -> bool {
    matches!(&f.value, ValueDef::Tokens(t)
        if t.clone().into_iter().next().is_some_and(|tt| tt.to_string() == "at_timestamp"))
}

// `at_timestamp("2026-12-01T00:00:00Z")`: an instant in UTC, to the second (Lambda's
// StartingPositionTimestamp, "Lambda parameters for Kinesis event source mappings",
// https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html).
fn at_timestamp(d: &mut Diagnostics, f: &FieldDef) -> Option<i64> {
    let ValueDef::Tokens(t) = &f.value else {
        return None;
    };
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    let lit = match tts.as_slice() {
        [_, proc_macro2::TokenTree::Group(g)] => syn::parse2::<syn::LitStr>(g.stream()).ok(),
        _ => None,
    };
    let expected =
        "expected `at_timestamp(\"2026-12-01T00:00:00Z\")`: a UTC time as YYYY-MM-DDTHH:MM:SSZ";
    let Some(lit) = lit else {
        d.error_spanned(t, expected);
        return None;
    };
    match utc_seconds(&lit.value()) {
        Some(secs) => Some(secs),
        None => {
            d.error(lit.span(), expected);
            None
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` as seconds since the Unix epoch (days from civil, proleptic
/// Gregorian calendar).
fn utc_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in_month = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m)
        || d < 1
        || d > days_in_month[(m - 1) as usize]
        || hh > 23
        || mm > 59
        || ss > 59
    {
        return None;
    }
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

fn prefix(d: &mut Diagnostics, f: &FieldDef) -> Option<Sp<Prefix>> {
    let s = value::string(d, f)?;
    let (prefix, errors) = Prefix::parse(&s.value);
    for e in errors {
        d.error(s.range, e);
    }
    Some(Sp::new(prefix, s.range))
}

fn s3(d: &mut Diagnostics, stage: &StageDef) -> S3 {
    let what = format!("s3 destination `{}`", stage.name);
    let keys = keyed(d, body(stage), S3_KEYS, &what);
    let bucket = match keys.get("bucket").and_then(|f| value::string(d, f)) {
        Some(b) => b,
        None => {
            if !keys.contains_key("bucket") {
                missing(d, stage, "bucket", "add `bucket: \"my-bucket\"`");
            }
            Sp::new(String::new(), stage.name.span())
        }
    };
    let (bytes, secs) = keys
        .get("buffer")
        .map(|f| value::buffer(d, f))
        .unwrap_or_default();
    let compression = match keys
        .get("compression")
        .and_then(|f| value::word(d, f, &["none", "gzip", "zip", "snappy", "hadoop_snappy"]))
        .as_ref()
        .map(|w| w.value.as_str())
    {
        Some("gzip") => Compression::Gzip,
        Some("zip") => Compression::Zip,
        Some("snappy") => Compression::Snappy,
        Some("hadoop_snappy") => Compression::HadoopSnappy,
        _ => Compression::None,
    };
    let mut partition_keys: Vec<PartitionKey> = Vec::new();
    if let Some(f) = keys.get("partition_keys") {
        for kf in value::block(d, f).unwrap_or(&[]) {
            if let Some(q) = &kf.quoted {
                d.error(q.span(), "a partition key's name is an identifier, not a string")
                    .note("note: the name is what `!{partitionKeyFromQuery:NAME}` and `!{partitionKeyFromLambda:NAME}` refer to");
                continue;
            }
            if let Some(first) = partition_keys.iter().find(|k| k.ident == kf.key) {
                d.error(
                    kf.key.span(),
                    format!("duplicate partition key `{}`", kf.key),
                )
                .related(first.ident.span(), "first defined here");
                continue;
            }
            if let Some(expr) = value::key_expr(d, kf, false) {
                partition_keys.push(PartitionKey {
                    ident: kf.key.clone(),
                    expr: expr.value,
                    range: expr.range,
                });
            }
        }
    }
    S3 {
        attrs: stage.attrs.clone(),
        ident: stage.name.clone(),
        record: record_type(stage),
        bucket,
        create_bucket: keys
            .get("create_bucket")
            .and_then(|f| value::boolean(d, f))
            .unwrap_or(true),
        prefix: keys.get("prefix").and_then(|f| prefix(d, f)),
        error_prefix: keys.get("error_prefix").and_then(|f| prefix(d, f)),
        buffer: Buffer {
            bytes: bytes.unwrap_or(Sp::new(DEFAULT_S3_BUFFER_BYTES, stage.name.span())),
            seconds: secs.unwrap_or(Sp::new(DEFAULT_S3_BUFFER_SECS, stage.name.span())),
        },
        compression,
        file_extension: keys.get("file_extension").and_then(|f| value::string(d, f)),
        time_zone: keys.get("time_zone").and_then(|f| value::string(d, f)),
        partition_keys,
        newline: keys
            .get("newline")
            .and_then(|f| value::boolean(d, f))
            .unwrap_or(true),
        kms_key: keys.get("encryption").and_then(|f| s3_encryption(d, f)),
    }
}

// `s3_managed` (SSE-S3, S3's default) | `kms("arn:aws:kms:...:key/...")` (SSE-KMS; Firehose's
// KMSEncryptionConfig takes the key's ARN).
fn s3_encryption(d: &mut Diagnostics, f: &FieldDef) -> Option<Sp<String>> {
    let expected = "expected `s3_managed` or `kms(\"arn:aws:kms:...:key/...\")` for an s3 destination's `encryption`";
    let ValueDef::Tokens(t) = &f.value else {
        d.error(f.key.span(), expected);
        return None;
    };
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    match tts.as_slice() {
        [proc_macro2::TokenTree::Ident(i)] if i == "s3_managed" => None,
        [
            proc_macro2::TokenTree::Ident(i),
            proc_macro2::TokenTree::Group(g),
        ] if i == "kms" => match syn::parse2::<syn::LitStr>(g.stream()) {
            Ok(s) if s.value().starts_with("arn:") && s.value().contains(":key/") => {
                Some(Sp::new(s.value(), s.span()))
            }
            _ => {
                d.error(g.span(), "expected a KMS key ARN as a string: `kms(\"arn:aws:kms:us-west-2:123456789012:key/...\")`")
                    .note("note: Firehose takes the key's ARN (Firehose API, KMSEncryptionConfig: https://docs.aws.amazon.com/firehose/latest/APIReference/API_KMSEncryptionConfig.html)");
                None
            }
        },
        _ => {
            d.error_spanned(t, expected);
            None
        }
    }
}

fn delivery(
    d: &mut Diagnostics,
    stage: &StageDef,
    names: &BTreeMap<String, (StageKind, usize, Ident)>,
) -> Delivery {
    let what = format!("delivery `{}`", stage.name);
    let keys = keyed(d, body(stage), DELIVERY_KEYS, &what);
    let SigDef::Route(route) = &stage.sig else {
        unreachable!("kpipe-codegen: the parser gives deliveries a route");
    };
    Delivery {
        attrs: stage.attrs.clone(),
        ident: stage.name.clone(),
        name: keys
            .get("name")
            .and_then(|f| value::string(d, f))
            .unwrap_or_else(|| default_name(&stage.name)),
        role_arn: keys.get("role_arn").and_then(|f| value::string(d, f)),
        encryption: keys
            .get("encryption")
            .and_then(|f| delivery_encryption(d, f)),
        tags: keys
            .get("tags")
            .map(|f| value::tags(d, f))
            .unwrap_or_default(),
        backup: keys.get("s3_backup").and_then(|f| s3_backup(d, f, names)),
        route: resolve_route(d, &stage.name, route, names),
    }
}

// `s3_backup: raw`: an s3 destination of the pipeline that gets the source records as they
// were before the transform (Firehose's S3BackupMode Enabled).
fn s3_backup(
    d: &mut Diagnostics,
    f: &FieldDef,
    names: &BTreeMap<String, (StageKind, usize, Ident)>,
) -> Option<(usize, Ident)> {
    let ident = match &f.value {
        ValueDef::Tokens(t) => syn::parse2::<Ident>(t.clone()).map_err(|_| t.clone()),
        _ => Err(quote::quote!()),
    };
    let ident = match ident {
        Ok(i) => i,
        Err(t) => {
            let message =
                "expected the name of an s3 destination for `s3_backup`: `s3_backup: raw_lake`";
            if t.is_empty() {
                d.error(f.key.span(), message);
            } else {
                d.error_spanned(&t, message);
            }
            return None;
        }
    };
    match names.get(&ident.to_string()) {
        Some((StageKind::S3, index, _)) => Some((*index, ident)),
        Some((kind, _, def)) => {
            d.error(
                ident.span(),
                format!(
                    "`s3_backup` names an s3 destination, but `{ident}` is {}",
                    kind.with_article()
                ),
            )
            .related(def.span(), format!("`{ident}` is declared here"));
            None
        }
        None => {
            let e = d.error(
                ident.span(),
                format!("cannot find s3 destination `{ident}` in this pipeline"),
            );
            let sinks = names
                .iter()
                .filter(|(_, v)| v.0 == StageKind::S3)
                .map(|(k, _)| k.as_str());
            match did_you_mean(&ident.to_string(), sinks) {
                Some(s) => e.note(format!("help: did you mean `{s}`?")),
                None => e.note(format!(
                    "help: declare it with `s3 {ident}: Record {{ bucket: \"...\" }}`"
                )),
            };
            None
        }
    }
}

// A route is `source -> destination` or `source -> transform -> destination`, where the
// source is a stream or `direct`.
//
//     delivery d: lake -> readings;
//                 ^^^^ expected a stream or `direct` as the source, found s3 destination `lake`
fn resolve_route(
    d: &mut Diagnostics,
    delivery: &Ident,
    route: &[Ident],
    names: &BTreeMap<String, (StageKind, usize, Ident)>,
) -> Option<Route> {
    if route.len() < 2 {
        d.error(
            Range::of(&route[0]),
            format!("delivery `{delivery}` needs a source and a destination"),
        )
        .note("help: write `source -> destination` or `source -> transform -> destination`");
        return None;
    }
    if route.len() > 3 {
        d.error(
            Range {
                start: route[3].span(),
                end: route[route.len() - 1].span(),
            },
            "a delivery has at most one transform: `source -> transform -> destination`",
        )
        .note("note: Firehose invokes one Lambda function per delivery stream");
        return None;
    }
    let mut ok = true;
    let mut lookup = |ident: &Ident, want: StageKind, role: &str| -> Option<usize> {
        let name = ident.to_string();
        match names.get(&name) {
            Some((kind, index, _)) if *kind == want => Some(*index),
            Some((kind, _, def)) => {
                let want_text = match want {
                    StageKind::Stream => "a stream or `direct`",
                    StageKind::Transform => "a transform",
                    StageKind::S3 => "an s3 destination",
                    StageKind::Delivery => "a delivery",
                    StageKind::Consumer => "a consumer",
                };
                d.error(
                    ident.span(),
                    format!(
                        "expected {want_text} as the {role}, found {} `{name}`",
                        kind.noun()
                    ),
                )
                .related(def.span(), format!("`{name}` is declared here"));
                ok = false;
                None
            }
            None => {
                let e = d.error(
                    ident.span(),
                    format!("cannot find stage `{name}` in this pipeline"),
                );
                let same_kind = names
                    .iter()
                    .filter(|(_, v)| v.0 == want)
                    .map(|(k, _)| k.as_str());
                if let Some(s) = did_you_mean(&name, same_kind) {
                    e.note(format!("help: did you mean `{s}`?"));
                } else {
                    e.note(format!(
                        "help: declare it with `{} {name}: ...`",
                        want.keyword()
                    ));
                }
                ok = false;
                None
            }
        }
    };
    let source = if route[0] == "direct" {
        Some(Source::Direct)
    } else {
        lookup(&route[0], StageKind::Stream, "source").map(|i| Source::Stream(i, route[0].clone()))
    };
    let transform = if route.len() == 3 {
        lookup(&route[1], StageKind::Transform, "transform").map(|i| (i, route[1].clone()))
    } else {
        None
    };
    let last = &route[route.len() - 1];
    let destination = lookup(last, StageKind::S3, "destination").map(|i| (i, last.clone()));
    if !ok {
        return None;
    }
    Some(Route {
        source: source?,
        transform,
        destination: destination?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_timestamps_convert_to_epoch_seconds() {
        assert_eq!(utc_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(utc_seconds("2026-11-27T08:00:00Z"), Some(1_795_766_400));
        assert_eq!(utc_seconds("2000-02-29T23:59:59Z"), Some(951_868_799));
        assert_eq!(utc_seconds("2001-02-29T00:00:00Z"), None);
        assert_eq!(utc_seconds("2026-13-01T00:00:00Z"), None);
        assert_eq!(utc_seconds("2026-12-01 00:00:00"), None);
    }
    use quote::format_ident;

    #[test]
    fn kebab_case_names() {
        assert_eq!(kebab(&format_ident!("sensor_lake")), "sensor-lake");
        assert_eq!(kebab(&format_ident!("SensorLake")), "sensor-lake");
        assert_eq!(kebab(&format_ident!("Telemetry")), "telemetry");
    }
}
