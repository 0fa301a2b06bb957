//! `stream NAME: Record { ... }`: a Kinesis data stream.

use super::{
    AWS_MANAGED_KINESIS_KEY, DEFAULT_MAX_RECORD_KIB, DEFAULT_RETENTION_HOURS, body, default_name,
    keyed, missing,
};
use crate::ast::{FieldAst, StageAst, ValueAst};
use crate::diagnostic::{Diagnostics, Range, did_you_mean};
use crate::model::*;
use crate::value;
use proc_macro2::Ident;

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

pub(super) fn stream(d: &mut Diagnostics, stage: &StageAst, record: &syn::Type) -> Stream {
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
        ValueAst::Closure(c) => Some(c.clone()),
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
        record: record.clone(),
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
fn capacity(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<Capacity>> {
    let ValueAst::Tokens(t) = &f.value else {
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
fn encryption(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<String>> {
    let ValueAst::Tokens(t) = &f.value else {
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
