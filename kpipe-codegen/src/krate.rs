//! How generated code names the runtime crate.
//!
//! `kpipe_runtime::pipeline!` forwards its own `$crate` as the tokens before the first `;`,
//! so generated code finds the runtime even when the dependency is renamed. The build.rs
//! frontend passes `::kpipe_runtime` (or `Builder::runtime_path`) instead.

use proc_macro2::{TokenStream, TokenTree};

/// Splits `$runtime_path ; body` into the path and the body.
pub(crate) fn split_runtime_path(input: TokenStream) -> syn::Result<(TokenStream, TokenStream)> {
    let mut path = TokenStream::new();
    let mut iter = input.into_iter();
    for tt in iter.by_ref() {
        if matches!(&tt, TokenTree::Punct(p) if p.as_char() == ';') {
            if path.is_empty() {
                return Err(syn::Error::new(
                    tt.span(),
                    "kpipe: expected the runtime path before `;`",
                ));
            }
            return Ok((path, iter.collect()));
        }
        path.extend(std::iter::once(tt));
    }
    Err(syn::Error::new(
        proc_macro2::Span::call_site(),
        "kpipe: expected `$runtime_path; pipeline ...`; use `kpipe_runtime::pipeline!` rather than calling the proc macro directly",
    ))
}
