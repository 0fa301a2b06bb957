//! Property: whatever tokens `pipeline!` is given, it answers with code and diagnostics,
//! never a panic (a panic in a proc macro is an unhelpful compiler error at best).
//!
//! Inputs are the design example with random edits (tokens deleted, repeated, swapped for
//! tokens of the language or for odd literals), so most cases get deep into every phase.
//! proptest keeps any failing case in `never_panics.proptest-regressions` beside this file,
//! replayed first (it holds the `partition_key: _` case this test found).

use proc_macro2::TokenStream;
use proptest::prelude::*;
use quote::quote;

const DESIGN: &str = include_str!("fixtures/design.kpipe");

/// Words the edits insert: keywords, punctuation, units, literals at and past the edges.
const VOCABULARY: &[&str] = &[
    "pipeline",
    "stream",
    "s3",
    "transform",
    "consumer",
    "delivery",
    "direct",
    "->",
    ":",
    ";",
    ",",
    "{",
    "}",
    "(",
    ")",
    "|",
    "&",
    ".",
    "::",
    "or",
    "24h",
    "0s",
    "1MiB",
    "0MiB",
    "999999MiB",
    "128KiB",
    "3",
    "0",
    "-1",
    "18446744073709551616",
    "1e400",
    "\"\"",
    "\"!{\"",
    "\"!{timestamp:\"",
    "\"!{partitionKeyFromQuery:}\"",
    "\"é\"",
    "true",
    "provisioned",
    "on_demand",
    "shards",
    "gzip",
    "partition_keys",
    "prefix",
    "error_prefix",
    "buffer",
    "name",
    "capacity",
    "retention",
    "function",
    "crate::f",
    "Reading",
    "Enriched",
    "Option<u8>",
    "'a'",
    "b\"x\"",
    "_",
    "#",
];

/// Splits the example into its words, keeping strings whole.
fn words(source: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            continue;
        }
        if c == '/' && chars.peek() == Some(&'/') {
            // A comment (doc comments included): to the end of the line.
            for d in chars.by_ref() {
                if d == '\n' {
                    break;
                }
            }
            continue;
        }
        let mut word = String::from(c);
        if c == '"' {
            for d in chars.by_ref() {
                word.push(d);
                if d == '"' {
                    break;
                }
            }
        } else if matches!((c, chars.peek()), ('-', Some('>')) | (':', Some(':'))) {
            word.push(chars.next().expect("peeked"));
        } else if c.is_alphanumeric() || c == '_' {
            while let Some(&d) = chars.peek() {
                if !(d.is_alphanumeric() || d == '_') {
                    break;
                }
                word.push(d);
                chars.next();
            }
        }
        out.push(word);
    }
    out
}

#[derive(Clone, Debug)]
enum Edit {
    Delete(usize),
    Repeat(usize),
    Replace(usize, usize),
    Insert(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0..400usize;
    let word = 0..VOCABULARY.len();
    prop_oneof![
        at.clone().prop_map(Edit::Delete),
        at.clone().prop_map(Edit::Repeat),
        (at.clone(), word.clone()).prop_map(|(a, w)| Edit::Replace(a, w)),
        (at, word).prop_map(|(a, w)| Edit::Insert(a, w)),
    ]
}

fn edited(edits: &[Edit]) -> String {
    let mut w = words(DESIGN);
    for e in edits {
        let n = w.len().max(1);
        match *e {
            Edit::Delete(i) if !w.is_empty() => {
                w.remove(i % n);
            }
            Edit::Repeat(i) if !w.is_empty() => {
                let x = w[i % n].clone();
                w.insert(i % n, x);
            }
            Edit::Replace(i, v) if !w.is_empty() => w[i % n] = VOCABULARY[v].to_owned(),
            Edit::Insert(i, v) => w.insert(i % (w.len() + 1), VOCABULARY[v].to_owned()),
            _ => {}
        }
    }
    w.join(" ")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn expanding_edited_pipelines_never_panics(edits in prop::collection::vec(edit(), 1..6)) {
        let source = edited(&edits);
        // Edits that unbalance the brackets do not tokenize: rustc would stop before the macro.
        let Ok(tokens) = source.parse::<TokenStream>() else {
            return Ok(());
        };
        let (out, _diagnostics) = kpipe_codegen::expand(&quote!(::kpipe_runtime), tokens.clone());
        // The output is still Rust, errors or not: the items users name keep existing.
        prop_assert!(syn::parse2::<syn::File>(out).is_ok(), "{source}");
        let mut full = quote!(::kpipe_runtime;);
        full.extend(tokens);
        let _ = kpipe_codegen::expand_pipeline(full);
    }
}

#[test]
fn the_example_is_split_into_its_words() {
    let w = words(DESIGN);
    assert!(w.contains(&"\"acme-telemetry\"".to_owned()));
    assert!(w.contains(&"provisioned".to_owned()));
    let tokens: TokenStream = w.join(" ").parse().unwrap();
    let (_, diagnostics) = kpipe_codegen::expand(&quote!(::kpipe_runtime), tokens);
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message()).collect();
    assert!(
        messages.is_empty(),
        "unedited, the example is valid: {messages:?}"
    );
}
