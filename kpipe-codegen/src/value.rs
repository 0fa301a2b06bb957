//! Reading setting values: strings, booleans, integers, and literals with units
//! (`24h`, `60s`, `1MiB`, `0.2MB`). Each reader reports a precise error and returns
//! `None`, so the caller falls back to the default and keeps going.

use crate::ast::{FieldAst, ValueAst};
use crate::diagnostic::{Diagnostics, Range};
use crate::model::{KeyExpr, Sp, Tag};
use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::ToTokens;
use syn::Lit;

pub(crate) const KIB: u64 = 1024;
pub(crate) const MIB: u64 = 1024 * 1024;

fn tokens<'a>(d: &mut Diagnostics, f: &'a FieldAst, expected: &str) -> Option<&'a TokenStream> {
    match &f.value {
        ValueAst::Tokens(t) => Some(t),
        ValueAst::Closure(c) => {
            d.error_spanned(c, format!("expected {expected}, found a closure"));
            None
        }
        ValueAst::Block(span, _) => {
            d.error(
                *span,
                format!("expected {expected}, found a `{{ ... }}` block"),
            );
            None
        }
    }
}

fn literal(d: &mut Diagnostics, f: &FieldAst, expected: &str) -> Option<Lit> {
    let t = tokens(d, f, expected)?;
    match syn::parse2::<Lit>(t.clone()) {
        Ok(lit) => Some(lit),
        Err(_) => {
            d.error_spanned(t, format!("expected {expected} for `{}`", f.key));
            None
        }
    }
}

/// `"text"`
pub(crate) fn string(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<String>> {
    match literal(d, f, "a string literal")? {
        Lit::Str(s) => Some(Sp::new(s.value(), s.span())),
        other => {
            d.error_spanned(&other, format!("expected a string literal for `{}`", f.key));
            None
        }
    }
}

/// `true` / `false`
pub(crate) fn boolean(d: &mut Diagnostics, f: &FieldAst) -> Option<bool> {
    match literal(d, f, "`true` or `false`")? {
        Lit::Bool(b) => Some(b.value),
        other => {
            d.error_spanned(
                &other,
                format!("expected `true` or `false` for `{}`", f.key),
            );
            None
        }
    }
}

/// A plain integer without a unit.
pub(crate) fn integer(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<u64>> {
    match literal(d, f, "a non-negative integer")? {
        Lit::Int(i) if i.suffix().is_empty() => match i.base10_parse::<u64>() {
            Ok(v) => Some(Sp::new(v, i.span())),
            Err(e) => {
                d.error(i.span(), e);
                None
            }
        },
        Lit::Int(i) => {
            d.error(
                i.span(),
                format!("`{}` takes a plain number, without a unit", f.key),
            );
            None
        }
        other => {
            d.error_spanned(
                &other,
                format!("expected a non-negative integer for `{}`", f.key),
            );
            None
        }
    }
}

/// A number with its unit suffix, from a literal such as `24h` or `0.2MB`.
fn number_with_unit(lit: &Lit) -> Option<(f64, String, Range)> {
    match lit {
        Lit::Int(i) => Some((
            i.base10_digits().parse().ok()?,
            i.suffix().to_owned(),
            Range::span(i.span()),
        )),
        Lit::Float(x) => Some((
            x.base10_digits().parse().ok()?,
            x.suffix().to_owned(),
            Range::span(x.span()),
        )),
        _ => None,
    }
}

const DURATION_UNITS: &str = "`s`, `min` (or `m`), `h`, `d`";
const SIZE_UNITS: &str = "`B`, `KiB`, `MiB`, `GiB` (or `KB`, `MB`, `GB`, which AWS's buffer settings use for the same powers of 1024)";

fn duration_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    })
}

fn size_unit(unit: &str) -> Option<u64> {
    Some(match unit {
        "B" => 1,
        "KB" | "KiB" => KIB,
        "MB" | "MiB" => MIB,
        "GB" | "GiB" => 1024 * MIB,
        _ => return None,
    })
}

/// Either a duration (seconds) or a size (bytes), from one literal.
enum Amount {
    Seconds(Sp<u64>),
    Bytes(Sp<u64>),
}

fn amount(d: &mut Diagnostics, lit: &Lit, key: &Ident) -> Option<Amount> {
    let Some((n, unit, range)) = number_with_unit(lit) else {
        d.error_spanned(
            lit,
            format!("expected a size like `5MiB` or a duration like `60s` for `{key}`"),
        );
        return None;
    };
    if unit.is_empty() {
        d.error(range, format!("`{}` needs a unit", lit.to_token_stream()))
            .note(format!(
                "help: sizes take {SIZE_UNITS}; durations take {DURATION_UNITS}"
            ));
        return None;
    }
    if let Some(mult) = duration_unit(&unit) {
        if n.fract() != 0.0 {
            d.error(
                range,
                "durations are whole numbers; use a smaller unit, like `90s` for 1.5 min",
            );
            return None;
        }
        return Some(Amount::Seconds(Sp::new(n as u64 * mult, range)));
    }
    if let Some(mult) = size_unit(&unit) {
        return Some(Amount::Bytes(Sp::new(
            (n * mult as f64).round() as u64,
            range,
        )));
    }
    d.error(range, format!("unknown unit `{unit}`"))
        .note(format!(
            "help: sizes take {SIZE_UNITS}; durations take {DURATION_UNITS}"
        ));
    None
}

/// A duration with a unit, in seconds.
pub(crate) fn duration(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<u64>> {
    let lit = literal(d, f, "a duration like `60s` or `24h`")?;
    match amount(d, &lit, &f.key)? {
        Amount::Seconds(s) => Some(s),
        Amount::Bytes(b) => {
            d.error(
                b.range,
                format!("expected a duration for `{}`, found a size", f.key),
            )
            .note(format!("help: durations take {DURATION_UNITS}"));
            None
        }
    }
}

/// A size with a unit, in bytes.
pub(crate) fn size(d: &mut Diagnostics, f: &FieldAst) -> Option<Sp<u64>> {
    let lit = literal(d, f, "a size like `512MiB`")?;
    match amount(d, &lit, &f.key)? {
        Amount::Bytes(b) => Some(b),
        Amount::Seconds(s) => {
            d.error(
                s.range,
                format!("expected a size for `{}`, found a duration", f.key),
            )
            .note(format!("help: sizes take {SIZE_UNITS}"));
            None
        }
    }
}

/// `SIZE or DURATION` (either order), or just one of them: whichever is reached first
/// triggers a flush. Returns (bytes, seconds).
pub(crate) fn buffer(d: &mut Diagnostics, f: &FieldAst) -> (Option<Sp<u64>>, Option<Sp<u64>>) {
    let Some(t) = tokens(d, f, "a buffer like `5MiB or 300s`") else {
        return (None, None);
    };
    let parts: Vec<TokenTree> = t.clone().into_iter().collect();
    let mut bytes = None;
    let mut secs = None;
    let mut items = Vec::new();
    match parts.as_slice() {
        [a] => items.push(a),
        [a, TokenTree::Ident(or), b] if or == "or" => {
            items.push(a);
            items.push(b);
        }
        _ => {
            d.error_spanned(
                t,
                format!(
                    "expected `SIZE or DURATION` for `{}`, like `5MiB or 300s`",
                    f.key
                ),
            );
            return (None, None);
        }
    }
    for item in items {
        let Ok(lit) = syn::parse2::<Lit>(item.to_token_stream()) else {
            d.error_spanned(
                item,
                "expected a size like `5MiB` or a duration like `300s`",
            );
            continue;
        };
        match amount(d, &lit, &f.key) {
            Some(Amount::Bytes(b)) if bytes.is_some() => {
                d.error(b.range, "the buffer size is given twice");
            }
            Some(Amount::Seconds(s)) if secs.is_some() => {
                d.error(s.range, "the buffer interval is given twice");
            }
            Some(Amount::Bytes(b)) => bytes = Some(b),
            Some(Amount::Seconds(s)) => secs = Some(s),
            None => {}
        }
    }
    (bytes, secs)
}

/// One identifier out of `choices`.
pub(crate) fn word(d: &mut Diagnostics, f: &FieldAst, choices: &[&str]) -> Option<Sp<String>> {
    let list = choices
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let t = tokens(d, f, &format!("one of {list}"))?;
    let Ok(ident) = syn::parse2::<Ident>(t.clone()) else {
        d.error_spanned(t, format!("expected one of {list} for `{}`", f.key));
        return None;
    };
    let w = ident.to_string();
    if choices.contains(&w.as_str()) {
        return Some(Sp::new(w, ident.span()));
    }
    let e = d.error(ident.span(), format!("unknown value `{w}` for `{}`", f.key));
    e.note(format!("note: expected one of {list}"));
    if let Some(s) = crate::diagnostic::did_you_mean(&w, choices.iter().copied()) {
        e.note(format!("help: did you mean `{s}`?"));
    }
    None
}

/// A field path (`sensor_id`, `.site`, `.meta.site`), a closure, or `random` (if allowed).
pub(crate) fn key_expr(
    d: &mut Diagnostics,
    f: &FieldAst,
    allow_random: bool,
) -> Option<Sp<KeyExpr>> {
    let t = match &f.value {
        ValueAst::Closure(c) => {
            return Some(Sp::new(KeyExpr::Closure(c.clone()), Range::of(c)));
        }
        _ => tokens(d, f, "a field like `.site` or a closure")?,
    };
    let range = Range::of(t);
    let parts: Vec<TokenTree> = t.clone().into_iter().collect();
    if allow_random && matches!(parts.as_slice(), [TokenTree::Ident(i)] if i == "random") {
        return Some(Sp::new(KeyExpr::Random, range));
    }
    let mut path = Vec::new();
    let mut expect_ident =
        !matches!(parts.first(), Some(TokenTree::Punct(p)) if p.as_char() == '.');
    let mut ok = !parts.is_empty();
    for tt in &parts {
        match tt {
            TokenTree::Ident(i) if expect_ident => {
                // `_` and keywords tokenize as identifiers but name no field (`r.type` does
                // not compile; `r#type` does).
                if syn::parse2::<syn::Ident>(TokenTree::Ident(i.clone()).into()).is_err() {
                    let message = if i == "_" {
                        "`_` is not a field name".to_owned()
                    } else {
                        format!(
                            "`{i}` is a Rust keyword, not a field name; a field named so is written `r#{i}`"
                        )
                    };
                    d.error(Range::of(i), message);
                    return None;
                }
                path.push(i.clone());
                expect_ident = false;
            }
            TokenTree::Punct(p) if p.as_char() == '.' && !expect_ident => expect_ident = true,
            _ => {
                ok = false;
                break;
            }
        }
    }
    if !ok || expect_ident || path.is_empty() {
        let also = if allow_random { ", `random`" } else { "" };
        d.error(range, format!("expected a field path like `.site`{also} or a closure like `|r: &Record| ...` for `{}`", f.key));
        return None;
    }
    Some(Sp::new(KeyExpr::Field(path), range))
}

/// `[ ... ]`: the bracketed group (its items are the caller's to read), or `expected` as the
/// error.
pub(crate) fn bracketed(
    d: &mut Diagnostics,
    f: &FieldAst,
    expected: &str,
) -> Option<proc_macro2::Group> {
    let ValueAst::Tokens(t) = &f.value else {
        d.error(f.key.span(), expected);
        return None;
    };
    let tts: Vec<TokenTree> = t.clone().into_iter().collect();
    let [TokenTree::Group(g)] = tts.as_slice() else {
        d.error_spanned(t, expected);
        return None;
    };
    if g.delimiter() != proc_macro2::Delimiter::Bracket {
        d.error(g.span(), expected);
        return None;
    }
    Some(g.clone())
}

/// `{ key: value, ... }`
pub(crate) fn block<'a>(d: &mut Diagnostics, f: &'a FieldAst) -> Option<&'a [FieldAst]> {
    match &f.value {
        ValueAst::Block(_, fields) => Some(fields),
        ValueAst::Tokens(t) => {
            d.error_spanned(t, format!("expected `{{ ... }}` for `{}`", f.key));
            None
        }
        ValueAst::Closure(c) => {
            d.error_spanned(c, format!("expected `{{ ... }}` for `{}`", f.key));
            None
        }
    }
}

/// `tags: { team: "data", "cost-center": ... }` as `key: "value"` pairs.
pub(crate) fn tags(d: &mut Diagnostics, f: &FieldAst) -> Vec<Tag> {
    let Some(fields) = block(d, f) else {
        return Vec::new();
    };
    let mut out: Vec<Tag> = Vec::new();
    for field in fields {
        let key = Sp::new(field.key_text(), field.key.span());
        if let Some(first) = out.iter().find(|t| t.key.value == key.value) {
            d.error(key.range, format!("duplicate tag `{}`", key.value))
                .related(first.key.range, "first defined here");
            continue;
        }
        if let Some(value) = string(d, field) {
            out.push(Tag { key, value });
        }
    }
    out
}
