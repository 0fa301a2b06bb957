//! The kpipe pipeline language: parse, lower, validate and expand.
//!
//! **Internal crate.** Users depend on `kpipe-runtime` and write `kpipe_runtime::pipeline!`.
//! This crate is shared by the proc macro (`kpipe-macros`) and by build scripts (the
//! [`build`] module, feature `build`), so both frontends use one parser and one generator.
//! Its API has no semver guarantee: pin it exactly (`=0.1.0`) together with `kpipe-runtime`.
//!
//! The phases, one module each:
//!
//! | phase | module | what it does |
//! |---|---|---|
//! | parse | `parse` | tokens to `ast`, stage by stage (one broken stage does not stop the rest) |
//! | lower | `lower` | keys, units and AWS's defaults to `model`; names resolved |
//! | validate | `validate` | one `check_*` function per service rule, each citing its source |
//! | expand | `expand` | the static spec and the typed glue for `kpipe-runtime` |
//!
//! Every phase reports into one [`Diagnostics`]; expansion happens even with errors, so the
//! items users refer to keep existing while they fix the declaration.

mod ast;
pub mod diagnostic;
mod expand;
mod krate;
mod lower;
mod model;
mod parse;
mod prefix;
mod validate;
mod value;

#[cfg(feature = "build")]
pub mod build;

pub use crate::diagnostic::{Diagnostic, Diagnostics};
use proc_macro2::TokenStream;

/// Expands the input of `pipeline!`: the runtime path, a `;`, then pipelines. Never fails:
/// problems come back as `compile_error!`s next to the best output that could be produced.
pub fn expand_pipeline(input: TokenStream) -> TokenStream {
    let (rt, body) = match krate::split_runtime_path(input) {
        Ok(parts) => parts,
        Err(err) => return err.into_compile_error(),
    };
    let (mut out, diags) = expand(&rt, body);
    out.extend(diags.into_compile_error());
    out
}

/// Parses, validates and expands pipelines, with `rt` as the path of the runtime crate.
/// Returns the generated items and every problem found.
pub fn expand(rt: &TokenStream, body: TokenStream) -> (TokenStream, Diagnostics) {
    let mut diags = Diagnostics::default();
    let file = parse::file(&mut diags, body);
    let mut out = TokenStream::new();
    for def in &file.pipelines {
        let model = lower::pipeline(&mut diags, def);
        validate::check(&mut diags, &model);
        out.extend(expand::pipeline(&model, rt));
    }
    (out, diags)
}
