//! Procedural macro behind `kpipe_runtime::pipeline!`.
//!
//! Use it through `kpipe-runtime`. This crate has no stable API of its own and is
//! versioned in lockstep with `kpipe-runtime` and `kpipe-codegen` (pin it exactly).
//! All logic lives in `kpipe-codegen`, where it is tested on `proc_macro2`.

use proc_macro::TokenStream;

/// Expands `$runtime_path; <pipeline>*`. Called by `kpipe_runtime::pipeline!`, which
/// passes its own `$crate` as the runtime path.
#[doc(hidden)]
#[proc_macro]
pub fn expand_pipeline(input: TokenStream) -> TokenStream {
    kpipe_codegen::expand_pipeline(input.into()).into()
}
