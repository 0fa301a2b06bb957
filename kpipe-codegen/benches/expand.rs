//! How long `pipeline!` takes to expand the design example (`tests/fixtures/design.kpipe`): parse, lower, validate and
//! generate (the work rustc asks of the proc macro), measured on `proc_macro2` tokens.
//! Target: under 50 ms. Results go to BENCHMARKS.md.

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use criterion::{Criterion, criterion_group, criterion_main};
use proc_macro2::TokenStream;
use std::hint::black_box;

/// The design example (the full pipeline of docs/design.md), shared with the expansion snapshot test.
const DESIGN_EXAMPLE: &str = include_str!("../tests/fixtures/design.kpipe");

fn bench(c: &mut Criterion) {
    let input: TokenStream = format!("::kpipe_runtime; {DESIGN_EXAMPLE}")
        .parse()
        .unwrap();
    let body: TokenStream = DESIGN_EXAMPLE.parse().unwrap();
    let mut g = c.benchmark_group("expand_design_example");
    // Baseline in the same run: only turning the source into tokens.
    g.bench_function("tokenize_only", |b| {
        b.iter(|| black_box(DESIGN_EXAMPLE).parse::<TokenStream>().unwrap())
    });
    g.bench_function("expand_pipeline", |b| {
        b.iter(|| kpipe_codegen::expand_pipeline(black_box(input.clone())))
    });
    g.bench_function("expand_and_format", |b| {
        b.iter(|| {
            let (out, _) =
                kpipe_codegen::expand(&"::kpipe_runtime".parse().unwrap(), black_box(body.clone()));
            prettyplease::unparse(&syn::parse2(out).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
