//! Tokens to [`ast`](crate::ast), at stage granularity.
//!
//! The body of a pipeline is first split into chunks with a cheap token-tree scan (a chunk
//! ends after a `{ ... }` block, a `;` or a `,`, and before a stage keyword that starts a new
//! stage). Each chunk is then parsed on its own, so one half-typed stage does not stop the
//! stages after it from being parsed, expanded and type-checked.

use crate::ast::{FieldAst, FileAst, PipelineAst, SigAst, StageAst, StageKind, ValueAst};
use crate::diagnostic::{Diagnostics, did_you_mean};
use proc_macro2::{Delimiter, Ident, Spacing, TokenStream, TokenTree};
use syn::parse::{ParseStream, Parser};
use syn::{Attribute, Token, Visibility};

const STAGE_KEYWORDS: [&str; 5] = ["stream", "transform", "s3", "delivery", "consumer"];

/// Parses every pipeline of one input. Syntax errors go to `diags`; what parsed is returned.
pub(crate) fn file(diags: &mut Diagnostics, input: TokenStream) -> FileAst {
    let mut pipelines = Vec::new();
    let parser = |stream: ParseStream<'_>| {
        let mut headers = Vec::new();
        while !stream.is_empty() {
            headers.push(pipeline_header(stream)?);
        }
        Ok(headers)
    };
    match parser.parse2(input) {
        Ok(headers) => {
            for (attrs, vis, name, body) in headers {
                let (fields, stages) = body_chunks(diags, body);
                pipelines.push(PipelineAst {
                    attrs,
                    vis,
                    name,
                    fields,
                    stages,
                });
            }
        }
        Err(err) => diags.syn(err),
    }
    FileAst { pipelines }
}

type Header = (Vec<Attribute>, Visibility, Ident, TokenStream);

// `#[doc = "..."] pub pipeline Telemetry { ... }`
fn pipeline_header(input: ParseStream<'_>) -> syn::Result<Header> {
    let attrs = input.call(Attribute::parse_outer)?;
    let vis: Visibility = input.parse()?;
    let kw: Ident = input
        .parse()
        .map_err(|e| syn::Error::new(e.span(), "expected `pipeline`"))?;
    if kw != "pipeline" {
        let mut msg = format!("expected `pipeline`, found `{kw}`");
        if StageKind::from_keyword(&kw.to_string()).is_some() {
            msg.push_str("\n\n= help: stages are declared inside `pipeline Name { ... }`");
        }
        return Err(syn::Error::new(kw.span(), msg));
    }
    let name: Ident = input.parse()?;
    let content;
    syn::braced!(content in input);
    let body: TokenStream = content.parse()?;
    Ok((attrs, vis, name, body))
}

fn is_punct(tt: &TokenTree, c: char) -> bool {
    matches!(tt, TokenTree::Punct(p) if p.as_char() == c)
}

fn is_stage_keyword(tt: &TokenTree) -> bool {
    matches!(tt, TokenTree::Ident(i) if STAGE_KEYWORDS.iter().any(|k| i == k))
}

/// Splits a pipeline body into chunks (see the module docs).
fn split_chunks(body: TokenStream) -> Vec<Vec<TokenTree>> {
    let tts: Vec<TokenTree> = body.into_iter().collect();
    let mut chunks = Vec::new();
    let mut cur: Vec<TokenTree> = Vec::new();
    let mut substantive = false; // the chunk holds more than attributes
    let mut i = 0;
    while i < tts.len() {
        let tt = &tts[i];
        // `# [ ... ]`: an attribute belongs to what follows it.
        if is_punct(tt, '#')
            && matches!(tts.get(i + 1), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Bracket)
        {
            cur.push(tt.clone());
            cur.push(tts[i + 1].clone());
            i += 2;
            continue;
        }
        // A stage keyword followed by a name starts a new stage even if the previous
        // chunk never ended (a delivery missing its `;`): recover there.
        if substantive
            && is_stage_keyword(tt)
            && matches!(tts.get(i + 1), Some(TokenTree::Ident(_)))
        {
            chunks.push(std::mem::take(&mut cur));
        }
        cur.push(tt.clone());
        let ends = match tt {
            TokenTree::Punct(p) => {
                (p.as_char() == ';' || p.as_char() == ',') && p.spacing() == Spacing::Alone
            }
            TokenTree::Group(g) => g.delimiter() == Delimiter::Brace,
            _ => false,
        };
        substantive = true;
        if ends {
            chunks.push(std::mem::take(&mut cur));
            substantive = false;
        }
        i += 1;
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

fn body_chunks(diags: &mut Diagnostics, body: TokenStream) -> (Vec<FieldAst>, Vec<StageAst>) {
    let mut fields = Vec::new();
    let mut stages = Vec::new();
    for chunk in split_chunks(body) {
        // A lone separator left over after a `{ ... }` field value.
        if chunk.len() == 1 && (is_punct(&chunk[0], ',') || is_punct(&chunk[0], ';')) {
            continue;
        }
        let tokens: TokenStream = chunk.into_iter().collect();
        let parsed = (|input: ParseStream<'_>| chunk_item(input)).parse2(tokens);
        match parsed {
            Ok(Item::Stage(s, errors)) => {
                // The stage exists even when its settings have syntax errors, so nothing
                // that refers to it reports it missing (one mistake, one error).
                for e in errors {
                    diags.syn(e);
                }
                stages.push(s);
            }
            Ok(Item::Field(f)) => fields.push(f),
            Err(err) => diags.syn(err),
        }
    }
    (fields, stages)
}

enum Item {
    /// A stage, with the syntax errors found (and recovered from) in its settings.
    Stage(StageAst, Vec<syn::Error>),
    Field(FieldAst),
}

fn chunk_item(input: ParseStream<'_>) -> syn::Result<Item> {
    let attrs = input.call(Attribute::parse_outer)?;
    if input.peek(syn::Ident) && input.peek2(Token![:]) && !input.peek2(Token![::]) {
        if let Some(attr) = attrs.first() {
            return Err(syn::Error::new_spanned(
                attr,
                "attributes are only allowed on stages and pipelines",
            ));
        }
        let field = field(input)?;
        if !input.is_empty() {
            input.parse::<Token![,]>()?;
        }
        return Ok(Item::Field(field));
    }
    let kind_kw: Ident = input.call(syn::ext::IdentExt::parse_any).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected a stage (`stream`, `transform`, `s3`, `delivery`, `consumer`) or a setting (`region: ...`)",
        )
    })?;
    let Some(kind) = StageKind::from_keyword(&kind_kw.to_string()) else {
        let word = kind_kw.to_string();
        let mut msg = format!(
            "unknown stage kind `{word}`\n\n= note: expected one of `stream`, `transform`, `s3`, `delivery`, `consumer`"
        );
        if let Some(k) = did_you_mean(&word, STAGE_KEYWORDS) {
            msg.push_str(&format!("\n\n= help: did you mean `{k}`?"));
        }
        return Err(syn::Error::new(kind_kw.span(), msg));
    };
    let name: Ident = input.parse().map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("expected the {}'s name after `{kind_kw}`", kind.noun()),
        )
    })?;
    input.parse::<Token![:]>().map_err(|e| {
        let example = match kind {
            StageKind::Stream | StageKind::S3 => "RecordType",
            StageKind::Transform => "Input -> Output",
            StageKind::Delivery => "source -> destination",
            StageKind::Consumer => "stream -> crate::function",
        };
        syn::Error::new(
            e.span(),
            format!("expected `:` and then `{example}` after `{kind_kw} {name}`"),
        )
    })?;
    let sig = match kind {
        StageKind::Stream => SigAst::Stream(input.parse()?),
        StageKind::S3 => SigAst::S3(input.parse()?),
        StageKind::Transform => {
            let from = input.parse()?;
            input.parse::<Token![->]>()?;
            SigAst::Transform(from, input.parse()?)
        }
        StageKind::Delivery => {
            let mut route = vec![input.call(syn::ext::IdentExt::parse_any)?];
            while input.peek(Token![->]) {
                input.parse::<Token![->]>()?;
                route.push(input.call(syn::ext::IdentExt::parse_any)?);
            }
            SigAst::Delivery(route)
        }
        StageKind::Consumer => {
            let stream = input.call(syn::ext::IdentExt::parse_any)?;
            input.parse::<Token![->]>().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected `->` and the consumer's function: `stream -> crate::function`",
                )
            })?;
            let function = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "expected the consumer's function as a path, like `crate::on_reading`",
                )
            })?;
            SigAst::Consumer(stream, Box::new(function))
        }
    };
    let mut errors = Vec::new();
    let body = if input.peek(syn::token::Brace) {
        let content;
        syn::braced!(content in input);
        let (fields, e) = fields_recovering(&content);
        errors = e;
        Some(fields)
    } else if kind == StageKind::Delivery {
        if input.is_empty() {
            // The chunk ended without `;`: point at the end of the route.
            let last = match &sig {
                SigAst::Delivery(route) => route.last().map_or(name.span(), |i| i.span()),
                _ => name.span(),
            };
            return Err(syn::Error::new(
                last,
                "expected `;` or `{ ... }` after the delivery's route",
            ));
        }
        input.parse::<Token![;]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected `;` or `{ ... }` after the delivery's route",
            )
        })?;
        None
    } else {
        return Err(input.error(format!(
            "expected `{{ ... }}` with the {}'s settings",
            kind.noun()
        )));
    };
    if !input.is_empty() {
        return Err(input.error("unexpected tokens after the stage"));
    }
    Ok(Item::Stage(
        StageAst {
            attrs,
            name,
            sig,
            body,
            broken: !errors.is_empty(),
        },
        errors,
    ))
}

/// `key: value, key: value, ...` (the inside of a block); the first syntax error.
pub(crate) fn fields(input: ParseStream<'_>) -> syn::Result<Vec<FieldAst>> {
    let (fields, errors) = fields_recovering(input);
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(fields),
    }
}

/// `key: value, ...`, recovering after a syntax error at the next setting: every setting
/// that parses is kept, with every error.
fn fields_recovering(input: ParseStream<'_>) -> (Vec<FieldAst>, Vec<syn::Error>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    while !input.is_empty() {
        match field(input) {
            Ok(f) => out.push(f),
            Err(e) => {
                errors.push(e);
                skip_setting(input);
            }
        }
        if input.is_empty() {
            break;
        }
        if input.peek(Token![,]) {
            let _ = input.parse::<Token![,]>();
            continue;
        }
        // `capacity: on_demand retention: 48h`: the value stopped where a new `key:` starts.
        if starts_setting(input) {
            let fork = input.fork();
            let next = match fork.parse::<syn::LitStr>() {
                Ok(q) => format!("\"{}\"", q.value()),
                Err(_) => fork
                    .call(syn::ext::IdentExt::parse_any)
                    .map(|i: Ident| i.to_string())
                    .unwrap_or_default(),
            };
            errors.push(input.error(format!("expected `,` before `{next}`")));
        } else {
            errors.push(input.error("expected `,` between settings"));
            skip_setting(input);
        }
    }
    (out, errors)
}

/// Whether the input continues with `key:` or `"key":` (not `path::`).
fn starts_setting(input: ParseStream<'_>) -> bool {
    (input.peek(syn::Ident) || input.peek(syn::LitStr))
        && input.peek2(Token![:])
        && !input.peek2(Token![::])
}

/// Skips the rest of a broken setting, up to the next top-level comma.
fn skip_setting(input: ParseStream<'_>) {
    while !input.is_empty() && !input.peek(Token![,]) {
        if input.parse::<TokenTree>().is_err() {
            break;
        }
    }
}

fn field(input: ParseStream<'_>) -> syn::Result<FieldAst> {
    let quoted: Option<syn::LitStr> = if input.peek(syn::LitStr) {
        Some(input.parse()?)
    } else {
        None
    };
    let key: Ident = match &quoted {
        Some(q) => Ident::new("quoted_key", q.span()),
        None => input.call(syn::ext::IdentExt::parse_any)?,
    };
    input
        .parse::<Token![:]>()
        .map_err(|e| syn::Error::new(e.span(), format!("expected `:` after `{key}`")))?;
    let value = if input.peek(Token![|]) || input.peek(Token![||]) || input.peek(Token![move]) {
        ValueAst::Closure(Box::new(input.parse()?))
    } else if input.peek(syn::token::Brace) {
        let content;
        let brace = syn::braced!(content in input);
        ValueAst::Block(brace.span.join(), fields(&content)?)
    } else {
        let mut tokens = TokenStream::new();
        while !input.is_empty() && !input.peek(Token![,]) {
            // `capacity: on_demand retention: 48h`: a new `key:` starts, the comma is missing
            // (reported by `fields_recovering`, which goes on with that setting).
            if !tokens.is_empty() && starts_setting(input) {
                break;
            }
            tokens.extend(std::iter::once(input.parse::<TokenTree>()?));
        }
        if tokens.is_empty() {
            return Err(input.error(format!("expected a value for `{key}`")));
        }
        ValueAst::Tokens(tokens)
    };
    Ok(FieldAst { key, quoted, value })
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn splits_stages_and_recovers_after_a_broken_one() {
        let mut d = Diagnostics::default();
        let f = file(
            &mut d,
            quote! {
                pipeline P {
                    region: "us-west-2",
                    stream a: A { capacity: on_demand }
                    strem b: B { }
                    /// Doc on c.
                    s3 c: C { bucket: "x" }
                    delivery d: a -> c
                    delivery e: a -> c;
                }
            },
        );
        let p = &f.pipelines[0];
        assert_eq!(p.fields.len(), 1);
        let names: Vec<String> = p.stages.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["a", "c", "e"]);
        assert_eq!(p.stages[1].attrs.len(), 1);
        let msgs: Vec<&str> = d.iter().map(|d| d.message()).collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        assert!(
            msgs[0].starts_with("unknown stage kind `strem`"),
            "{msgs:?}"
        );
        assert!(msgs[0].contains("did you mean `stream`"));
        assert!(msgs[1].contains("expected `;`"), "{msgs:?}");
    }

    #[test]
    fn closures_with_commas_in_types_stay_one_value() {
        let mut d = Diagnostics::default();
        let f = file(
            &mut d,
            quote! {
                pipeline P {
                    stream a: A {
                        partition_key: |r: &Pair<u8, u8>| r.0.to_string(),
                        retention: 24h,
                    }
                }
            },
        );
        assert!(d.is_empty());
        let body = f.pipelines[0].stages[0].body.as_ref().unwrap();
        assert_eq!(body.len(), 2);
        assert!(matches!(body[0].value, ValueAst::Closure(_)));
    }
}
