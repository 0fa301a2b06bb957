//! `s3 NAME: Record { ... }`: an S3 destination.

use super::{
    DEFAULT_CONVERSION_BUFFER_BYTES, DEFAULT_S3_BUFFER_BYTES, DEFAULT_S3_BUFFER_SECS, body, keyed,
    missing,
};
use crate::ast::{FieldAst, StageAst, ValueAst};
use crate::diagnostic::{Diagnostics, Range, did_you_mean};
use crate::model::*;
use crate::value;
use crate::value::MIB;
use quote::ToTokens;

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
    "format",
    "table",
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
    if keys.contains_key("table") && !keys.contains_key("format") {
        d.error(
            keys["table"].key.span(),
            "`table` names the Glue table of a Parquet or ORC destination; add `format: parquet` or `format: orc`",
        );
    }
    let compression_word = keys
        .get("compression")
        .and_then(|f| value::word(d, f, &["none", "gzip", "zip", "snappy", "hadoop_snappy"]));
    let compression_range = compression_word.as_ref().map(|w| w.range);
    let compression = match compression_word.as_ref().map(|w| w.value.as_str()) {
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
    let conversion = keys
        .get("format")
        .and_then(|f| format(d, f))
        .map(|(range, format)| conversion(d, range, format, keys.get("table").copied()));
    // With format conversion the default size is 128 MiB (Amazon Data Firehose, Convert input
    // data format: https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html).
    let default_bytes = if conversion.is_some() {
        DEFAULT_CONVERSION_BUFFER_BYTES
    } else {
        DEFAULT_S3_BUFFER_BYTES
    };
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
            bytes: bytes.unwrap_or(Sp::new(default_bytes, stage.name.span())),
            seconds: secs.unwrap_or(Sp::new(DEFAULT_S3_BUFFER_SECS, stage.name.span())),
        },
        compression,
        compression_range,
        file_extension: keys.get("file_extension").and_then(|f| value::string(d, f)),
        time_zone: keys.get("time_zone").and_then(|f| value::string(d, f)),
        partition_keys,
        newline: keys
            .get("newline")
            .and_then(|f| value::boolean(d, f))
            .unwrap_or(true),
        kms_key: keys.get("encryption").and_then(|f| s3_encryption(d, f)),
        conversion,
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

// `json` | `parquet` | `orc` | `parquet(compression: gzip, ...)` | `orc(stripe_size: 64MiB, ...)`:
// the serializer's settings as Firehose takes them (Firehose API, ParquetSerDe:
// https://docs.aws.amazon.com/firehose/latest/APIReference/API_ParquetSerDe.html; OrcSerDe:
// https://docs.aws.amazon.com/firehose/latest/APIReference/API_OrcSerDe.html).
fn format(d: &mut Diagnostics, f: &FieldAst) -> Option<(Range, ColumnarFormat)> {
    let expected = "expected `json`, `parquet`, `orc`, or `parquet(...)` / `orc(...)` with the serializer's settings for `format`";
    let ValueAst::Tokens(t) = &f.value else {
        d.error(f.key.span(), expected);
        return None;
    };
    let range = Range::of(t);
    let tts: Vec<proc_macro2::TokenTree> = t.clone().into_iter().collect();
    let (kw, settings) = match tts.as_slice() {
        [proc_macro2::TokenTree::Ident(kw)] => (kw, Vec::new()),
        [
            proc_macro2::TokenTree::Ident(kw),
            proc_macro2::TokenTree::Group(g),
        ] if g.delimiter() == proc_macro2::Delimiter::Parenthesis && kw != "json" => {
            match syn::parse::Parser::parse2(crate::parse::fields, g.stream()) {
                Ok(fields) => (kw, fields),
                Err(e) => {
                    d.syn(e);
                    return None;
                }
            }
        }
        _ => {
            d.error(range, expected);
            return None;
        }
    };
    let kind = kw.to_string();
    let format = match kind.as_str() {
        "json" => return None,
        "parquet" => {
            let keys = keyed(
                d,
                &settings,
                &["compression", "block_size", "page_size", "writer_version"],
                "`parquet(...)`",
            );
            let compression = match keys.get("compression") {
                Some(cf) if is_word(cf, "zstd") || is_word(cf, "zlib") => {
                    d.error_spanned(&cf_tokens(cf), "Firehose's Parquet serializer compresses with `snappy`, `gzip` or `uncompressed`")
                        .note("note: ParquetSerDe's Compression is UNCOMPRESSED, SNAPPY or GZIP (Firehose API, ParquetSerDe: https://docs.aws.amazon.com/firehose/latest/APIReference/API_ParquetSerDe.html)");
                    "Snappy"
                }
                Some(cf) => match value::word(d, cf, &["snappy", "gzip", "uncompressed"]) {
                    Some(w) if w.value == "gzip" => "Gzip",
                    Some(w) if w.value == "uncompressed" => "Uncompressed",
                    _ => "Snappy",
                },
                None => "Snappy",
            };
            let writer_version = match keys
                .get("writer_version")
                .and_then(|wf| value::word(d, wf, &["v1", "v2"]))
            {
                Some(w) if w.value == "v2" => "V2",
                _ => "V1",
            };
            ColumnarFormat::Parquet {
                compression,
                block_size: serde_size(d, &keys, &HDFS_BLOCK, PARQUET, kw),
                page_size: serde_size(d, &keys, &PARQUET_PAGE, PARQUET, kw),
                writer_version,
            }
        }
        "orc" => {
            let keys = keyed(
                d,
                &settings,
                &["compression", "stripe_size", "block_size"],
                "`orc(...)`",
            );
            let compression = match keys
                .get("compression")
                .and_then(|cf| value::word(d, cf, &["snappy", "zlib", "none"]))
            {
                Some(w) if w.value == "zlib" => "Zlib",
                Some(w) if w.value == "none" => "None",
                _ => "Snappy",
            };
            ColumnarFormat::Orc {
                compression,
                stripe_size: serde_size(d, &keys, &ORC_STRIPE, ORC, kw),
                block_size: serde_size(d, &keys, &HDFS_BLOCK, ORC, kw),
            }
        }
        _ => {
            let e = d.error(kw.span(), expected);
            if let Some(s) = did_you_mean(&kind, ["json", "parquet", "orc"]) {
                e.note(format!("help: did you mean `{s}`?"));
            }
            return None;
        }
    };
    Some((range, format))
}

fn is_word(f: &FieldAst, word: &str) -> bool {
    matches!(&f.value, ValueAst::Tokens(t) if t.to_string() == word)
}

fn cf_tokens(f: &FieldAst) -> proc_macro2::TokenStream {
    match &f.value {
        ValueAst::Tokens(t) => t.clone(),
        _ => f.key.to_token_stream(),
    }
}

/// A serializer size setting: its key, default and minimum.
struct SizeSetting {
    key: &'static str,
    default: u64,
    min: u64,
    min_text: &'static str,
}

const HDFS_BLOCK: SizeSetting = SizeSetting {
    key: "block_size",
    default: 256 * MIB,
    min: 64 * MIB,
    min_text: "64MiB",
};
const PARQUET_PAGE: SizeSetting = SizeSetting {
    key: "page_size",
    default: MIB,
    min: 64 * 1024,
    min_text: "64KiB",
};
const ORC_STRIPE: SizeSetting = SizeSetting {
    key: "stripe_size",
    default: 64 * MIB,
    min: 8 * MIB,
    min_text: "8MiB",
};
/// The serializers' API pages, where the sizes' minimums are.
const PARQUET: (&str, &str) = (
    "ParquetSerDe",
    "https://docs.aws.amazon.com/firehose/latest/APIReference/API_ParquetSerDe.html",
);
const ORC: (&str, &str) = (
    "OrcSerDe",
    "https://docs.aws.amazon.com/firehose/latest/APIReference/API_OrcSerDe.html",
);

/// A serializer size with its minimum, and at most `i32::MAX` bytes (the API's type).
fn serde_size(
    d: &mut Diagnostics,
    keys: &std::collections::BTreeMap<String, &FieldAst>,
    setting: &SizeSetting,
    (serde, page): (&str, &str),
    at: &proc_macro2::Ident,
) -> Sp<u64> {
    let SizeSetting {
        key,
        default,
        min,
        min_text,
    } = *setting;
    let Some(size) = keys.get(key).and_then(|f| value::size(d, f)) else {
        return Sp::new(default, at.span());
    };
    if size.value < min || size.value > i32::MAX as u64 {
        d.error(
            size.range,
            format!("`{key}` must be at least {min_text} and under 2GiB"),
        )
        .note(format!(
            "note: the minimum is {min_text} (Firehose API, {serde}: {page})"
        ));
    }
    size
}

fn conversion(
    d: &mut Diagnostics,
    range: Range,
    format: ColumnarFormat,
    table: Option<&FieldAst>,
) -> Conversion {
    let mut c = Conversion {
        range,
        format,
        database: None,
        table: None,
        create: true,
        timestamps: Vec::new(),
    };
    let Some(tf) = table else {
        return c;
    };
    let fields = value::block(d, tf).unwrap_or(&[]);
    let keys = keyed(
        d,
        fields,
        &["database", "name", "create", "timestamps"],
        "`table`",
    );
    c.database = keys.get("database").and_then(|f| value::string(d, f));
    c.table = keys.get("name").and_then(|f| value::string(d, f));
    c.create = keys
        .get("create")
        .and_then(|f| value::boolean(d, f))
        .unwrap_or(true);
    if let Some(f) = keys.get("timestamps") {
        c.timestamps = field_paths(d, f);
    }
    c
}

// `[observed_at, meta.sent_at]`
fn field_paths(d: &mut Diagnostics, f: &FieldAst) -> Vec<Sp<String>> {
    let expected =
        "expected a list of field paths like `[observed_at, meta.sent_at]` for `timestamps`";
    let Some(g) = value::bracketed(d, f, expected) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    let mut current = String::new();
    let mut start: Option<proc_macro2::Span> = None;
    let mut end = g.span();
    let mut ok = true;
    let mut finish = |current: &mut String,
                      start: &mut Option<proc_macro2::Span>,
                      end,
                      ok: &mut bool,
                      d: &mut Diagnostics| {
        if let Some(s) = start.take() {
            if *ok && !current.is_empty() && !current.ends_with('.') {
                paths.push(Sp::new(std::mem::take(current), Range { start: s, end }));
            } else {
                d.error(Range { start: s, end }, expected);
            }
        }
        current.clear();
        *ok = true;
    };
    for tt in g.stream() {
        match &tt {
            proc_macro2::TokenTree::Punct(p) if p.as_char() == ',' => {
                finish(&mut current, &mut start, end, &mut ok, d);
            }
            proc_macro2::TokenTree::Ident(i) => {
                start.get_or_insert(i.span());
                end = i.span();
                if !(current.is_empty() || current.ends_with('.')) {
                    ok = false;
                }
                current.push_str(&i.to_string());
            }
            proc_macro2::TokenTree::Punct(p) if p.as_char() == '.' => {
                start.get_or_insert(p.span());
                end = p.span();
                if current.is_empty() || current.ends_with('.') {
                    ok = false;
                }
                current.push('.');
            }
            other => {
                start.get_or_insert(other.span());
                end = other.span();
                ok = false;
            }
        }
    }
    finish(&mut current, &mut start, end, &mut ok, d);
    paths
}
