//! `s3 NAME: Record { ... }`: an S3 destination.

use super::{DEFAULT_S3_BUFFER_BYTES, DEFAULT_S3_BUFFER_SECS, body, keyed, missing};
use crate::ast::{FieldAst, StageAst, ValueAst};
use crate::diagnostic::Diagnostics;
use crate::model::*;
use crate::value;

use crate::prefix::Prefix;

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

fn prefix(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<Prefix>> {
    let s = value::string(d, f)?;
    let (prefix, errors) = Prefix::parse(&s.value);
    for e in errors {
        d.error(s.range, e);
    }
    Some(Sp::new(prefix, s.range))
}

pub(super) fn s3(d: &mut Diagnostics, stage: &StageAst, record: &syn::Type) -> S3 {
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
        record: record.clone(),
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
fn s3_encryption(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<String>> {
    let expected = "expected `s3_managed` or `kms(\"arn:aws:kms:...:key/...\")` for an s3 destination's `encryption`";
    let ValueAst::Tokens(t) = &f.value else {
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
