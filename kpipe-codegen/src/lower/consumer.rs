//! `consumer NAME: stream -> function { ... }`: a Lambda function reading a stream through
//! an event source mapping.

use super::transform::lambda;
use super::{
    DEFAULT_CONSUMER_BATCH_SIZE, DEFAULT_CONSUMER_BATCH_WINDOW_SECS,
    DEFAULT_CONSUMER_PARALLELIZATION, body, keyed, missing,
};
use crate::ast::{FieldAst, StageAst, StageKind, ValueAst};
use crate::diagnostic::{Diagnostics, did_you_mean};
use crate::model::*;
use crate::value;
use proc_macro2::Ident;
use std::collections::BTreeMap;

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

pub(super) fn consumer(
    d: &mut Diagnostics,
    pipeline: &Ident,
    stage: &StageAst,
    stream_ident: &Ident,
    function: &syn::ExprPath,
    names: &BTreeMap<String, (StageKind, usize, Ident)>,
) -> Consumer {
    let what = format!("consumer `{}`", stage.name);
    let keys = keyed(d, body(stage), CONSUMER_KEYS, &what);

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
            ValueAst::Tokens(t) if t.to_string() == "unlimited" => None,
            _ => value::integer(d, f),
        },
        None => None,
    };
    let maximum_record_age_secs = match keys.get("maximum_record_age") {
        Some(f) => match &f.value {
            ValueAst::Tokens(t) if t.to_string() == "unlimited" => None,
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
        function: function.clone(),
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
fn on_failure(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<OnFailure>> {
    let expected =
        "expected `sqs(\"queue\")`, `sns(\"topic\")` or `s3(\"bucket\")` for `on_failure`";
    let ValueAst::Tokens(t) = &f.value else {
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
fn filter_criteria(d: &mut Diagnostics, f: &FieldAst) -> Vec<Sp<String>> {
    let expected = "expected a list of filter patterns: `filter_criteria: [r#\"{\"data\": {\"kind\": [\"alert\"]}}\"#]`";
    let Some(g) = value::bracketed(d, f, expected) else {
        return Vec::new();
    };
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

fn at_timestamp_call(f: &FieldAst) -> bool {
    matches!(&f.value, ValueAst::Tokens(t)
        if t.clone().into_iter().next().is_some_and(|tt| tt.to_string() == "at_timestamp"))
}

// `at_timestamp("2026-12-01T00:00:00Z")`: an instant in UTC, to the second (Lambda's
// StartingPositionTimestamp, "Lambda parameters for Kinesis event source mappings",
// https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html).
fn at_timestamp(d: &mut Diagnostics, f: &FieldAst) -> Option<i64> {
    let ValueAst::Tokens(t) = &f.value else {
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
}
