//! `delivery NAME: source -> [transform ->] destination { ... }`: a Firehose delivery stream.

use super::{body, default_name, keyed};
use crate::ast::{FieldAst, StageAst, StageKind, ValueAst};
use crate::diagnostic::{Diagnostics, Range, did_you_mean};
use crate::model::*;
use crate::value;
use proc_macro2::Ident;
use std::collections::BTreeMap;

const DELIVERY_KEYS: &[&str] = &["name", "role_arn", "tags", "encryption", "s3_backup"];

// `none` | `aws_owned` | `kms("arn:aws:kms:...")` (Firehose's DeliveryStreamEncryptionConfiguration
// takes a key ARN, not an alias).
fn delivery_encryption(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<DeliveryEncryption>> {
    let expected =
        "expected `none`, `aws_owned` or `kms(\"arn:aws:kms:...\")` for a delivery's `encryption`";
    let ValueAst::Tokens(t) = &f.value else {
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

pub(super) fn delivery(
    d: &mut Diagnostics,
    stage: &StageAst,
    route: &[Ident],
    names: &BTreeMap<String, (StageKind, usize, Ident)>,
) -> Delivery {
    let what = format!("delivery `{}`", stage.name);
    let keys = keyed(d, body(stage), DELIVERY_KEYS, &what);

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
    f: &FieldAst,
    names: &BTreeMap<String, (StageKind, usize, Ident)>,
) -> Option<(usize, Ident)> {
    let ident = match &f.value {
        ValueAst::Tokens(t) => syn::parse2::<Ident>(t.clone()).map_err(|_| t.clone()),
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
            let destinations = names
                .iter()
                .filter(|(_, v)| v.0 == StageKind::S3)
                .map(|(k, _)| k.as_str());
            match did_you_mean(&ident.to_string(), destinations) {
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
