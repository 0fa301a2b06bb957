//! Snapshots of the code `pipeline!` generates, formatted with prettyplease. Review changes
//! with `cargo insta review` (or `INSTA_UPDATE=always` and `git diff`).

use proc_macro2::TokenStream;
use quote::quote;

/// Snapshots without insta's `expression:` header (a dump of the input tokens).
macro_rules! snapshot {
    ($value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!($value));
    }};
}

fn expand(body: TokenStream) -> String {
    let (tokens, diags) = kpipe_codegen::expand(&quote!(::kpipe_runtime), body);
    let errors: Vec<String> = diags.iter().map(|d| d.message().to_owned()).collect();
    let file: syn::File = syn::parse2(tokens).expect("generated code parses as a file");
    let mut out = prettyplease::unparse(&file);
    if !errors.is_empty() {
        out = format!("// errors: {errors:#?}\n{out}");
    }
    out
}

#[test]
fn design_example() {
    let source = include_str!("fixtures/design.kpipe");
    snapshot!(expand(source.parse().expect("the fixture tokenizes")));
}

#[test]
fn empty_s3_block_means_the_console_defaults() {
    snapshot!(expand(quote! {
        pipeline Minimal {
            s3 archive: Event { bucket: "acme-archive" }
            delivery put: direct -> archive;
        }
    }));
}

#[test]
fn invalid_parts_still_expand_with_unreachable_bodies() {
    snapshot!(expand(quote! {
        pipeline Broken {
            stream readings: Reading { capacity: on_demand }
            transform enrich: Reading -> Enriched { retries: 1 }
            s3 lake: Enriched { bucket: "acme-lake" }
            delivery d: readings -> enrich -> lake;
            delivery e: readings -> missing -> lake;
        }
    }));
}
