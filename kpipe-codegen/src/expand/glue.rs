//! One associated function per stage, tying the user's types and functions to the runtime.
//!
//! Every call that carries a trait bound the user can violate is spanned with the user's
//! tokens (`quote_spanned!`), so rustc reports a wrong record type at that type, a wrong
//! function at that function, and a type mismatch between stages at the stage's name in the
//! delivery's route; never inside generated code.

use super::spec::tokens_text;
use crate::model::*;
use proc_macro2::{Ident, Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

const UNREACHABLE: &str = "kpipe: this pipeline declaration has errors";

fn unreachable(rt: &TokenStream) -> TokenStream {
    quote!(#rt::__private::unreachable!(#UNREACHABLE))
}

/// `codec::<T>("T")`, spanned at the user's type so a `T` that is not a record is reported there.
fn codec(rt: &TokenStream, ty: &syn::Type) -> TokenStream {
    let name = tokens_text(ty);
    quote_spanned!(ty.span()=> #rt::__private::codec::<#ty>(#name))
}

/// A `fn(&T) -> String` producing a key from a field path or a closure.
fn key_fn(rt: &TokenStream, ty: &syn::Type, key: &KeyExpr, range: Span) -> TokenStream {
    // The parameter keeps a call-site span (hygiene); the call around the user's tokens is
    // spanned at them, so a key that is not `Display` is reported at the field or closure.
    let r = Ident::new("__kpipe_r", Span::call_site());
    match key {
        KeyExpr::Field(path) => {
            let call = quote_spanned!(range=> #rt::__private::partition_key(&#r.#(#path).*));
            quote!(|#r: &#ty| #call)
        }
        KeyExpr::Closure(c) => {
            let call = quote_spanned!(c.span()=> #rt::__private::partition_key(&(#c)(#r)));
            quote!(|#r: &#ty| #call)
        }
        KeyExpr::Random => quote!(|_: &#ty| #rt::__private::random_partition_key()),
    }
}

/// The stage's doc comment, or a generated one (generated items are public API of the
/// user's crate, and `missing_docs` should not fire on them).
fn docs(attrs: &[syn::Attribute], default: String) -> TokenStream {
    if attrs.iter().any(|a| a.path().is_ident("doc")) {
        quote!(#(#attrs)*)
    } else {
        quote!(#[doc = #default] #(#attrs)*)
    }
}

pub(super) fn stage_fns(p: &Pipeline, rt: &TokenStream) -> TokenStream {
    let vis = &p.vis;
    let mut out = TokenStream::new();
    for (i, s) in p.streams.iter().enumerate() {
        let (ident, ty) = (&s.ident, &s.record);
        let attrs = docs(
            &s.attrs,
            format!(
                " The Kinesis stream `{}` of `{}` records.",
                s.name.value,
                tokens_text(ty)
            ),
        );
        let codec = codec(rt, ty);
        let pk = match &s.partition_key {
            Some(k) => key_fn(rt, ty, &k.value, k.range.start()),
            None => {
                let u = unreachable(rt);
                quote!(|_: &#ty| #u)
            }
        };
        let ehk = match &s.explicit_hash_key {
            Some(c) => {
                let call = quote_spanned!(c.span()=> #rt::__private::hash_key);
                quote!(#rt::__private::Option::Some(|__kpipe_r: &#ty| #call((#c)(__kpipe_r))))
            }
            None => quote!(#rt::__private::Option::None),
        };
        out.extend(quote! {
            #attrs
            #vis fn #ident() -> #rt::__private::StreamDef<#ty> {
                #rt::__private::stream(
                    &<Self as #rt::__private::Pipeline>::SPEC.streams[#i],
                    #codec,
                    #pk,
                    #ehk,
                )
            }
        });
    }
    for (i, t) in p.transforms.iter().enumerate() {
        let (ident, input, output) = (&t.ident, &t.input, &t.output);
        let attrs = docs(
            &t.attrs,
            format!(
                " The transform `{ident}` from `{}` to `{}`.",
                tokens_text(input),
                tokens_text(output)
            ),
        );
        let body = match &t.function {
            Some(f) => {
                let (ci, co) = (codec(rt, input), codec(rt, output));
                quote! {
                    #rt::__private::transform(
                        &<Self as #rt::__private::Pipeline>::SPEC.transforms[#i],
                        #ci,
                        #co,
                        #f,
                    )
                }
            }
            None => unreachable(rt),
        };
        out.extend(quote! {
            #attrs
            #vis fn #ident() -> #rt::__private::TransformDef<#input, #output> {
                #body
            }
        });
    }
    for (i, s) in p.sinks.iter().enumerate() {
        let (ident, ty) = (&s.ident, &s.record);
        let attrs = docs(
            &s.attrs,
            format!(
                " The S3 destination `{ident}` (bucket `{}`) of `{}` records.",
                s.bucket.value,
                tokens_text(ty)
            ),
        );
        let codec = codec(rt, ty);
        let keys = s.partition_keys.iter().map(|k| {
            let name = k.ident.to_string();
            let f = key_fn(rt, ty, &k.expr, k.range.start());
            quote!((#name, #rt::__private::key_fn::<#ty>(#f)))
        });
        out.extend(quote! {
            #attrs
            #vis fn #ident() -> #rt::__private::S3Def<#ty> {
                #rt::__private::s3(
                    &<Self as #rt::__private::Pipeline>::SPEC.destinations[#i],
                    #codec,
                    #rt::__private::Vec::from([#(#keys),*]),
                )
            }
        });
    }
    for (i, d) in p.deliveries.iter().enumerate() {
        let ident = &d.ident;
        let attrs = docs(
            &d.attrs,
            format!(" The Firehose delivery stream `{}`.", d.name.value),
        );
        let body = match &d.route {
            Some(route) => delivery_body(p, rt, i, route),
            None => unreachable(rt),
        };
        out.extend(quote! {
            #attrs
            #vis fn #ident() -> #rt::__private::DeliveryDef {
                #body
            }
        });
    }
    for (i, c) in p.consumers.iter().enumerate() {
        let ident = &c.ident;
        let attrs = docs(
            &c.attrs,
            format!(
                " The consumer `{ident}`: `{}` called on the records of a stream.",
                tokens_text(&c.function)
            ),
        );
        let (ty, body) = match &c.stream {
            Some((s, stream)) => {
                let f = &c.function;
                // Spanned at the function, where rustc reports one that does not take the
                // stream's records.
                let call = quote_spanned!(f.span()=> #rt::__private::consumer(
                    &<Self as #rt::__private::Pipeline>::SPEC.consumers[#i],
                    Self::#stream().codec(),
                    #f,
                ));
                let ty = &p.streams[*s].record;
                (quote!(#ty), call)
            }
            None => (quote!(()), unreachable(rt)),
        };
        out.extend(quote! {
            #attrs
            #vis fn #ident() -> #rt::__private::ConsumerDef<#ty> {
                #body
            }
        });
    }
    out
}

// delivery d: readings -> enrich -> lake;
//
//     let __kpipe_source = Self::readings().codec();
//     let __kpipe_linked = link(__kpipe_source, Self::enrich());   // spanned at `enrich`
//     deliver(&SPEC.deliveries[i], __kpipe_linked, Self::lake())  // spanned at `lake`
fn delivery_body(p: &Pipeline, rt: &TokenStream, i: usize, route: &Route) -> TokenStream {
    let source = match &route.source {
        Source::Stream(_, ident) => quote!(Self::#ident().codec()),
        Source::Direct => {
            // Direct PUT records have the type of the stage they enter.
            let ty = match &route.transform {
                Some((t, _)) => &p.transforms[*t].input,
                None => &p.sinks[route.destination.0].record,
            };
            codec(rt, ty)
        }
    };
    // Locals are interpolated with call-site spans: a local spanned at the user's tokens
    // would not resolve (macro hygiene).
    let source_var = Ident::new("__kpipe_source", Span::call_site());
    let linked_var = Ident::new("__kpipe_linked", Span::call_site());
    let linked = match &route.transform {
        Some((_, t)) => {
            let then = quote_spanned!(t.span()=> Self::#t());
            quote!(#source_var.__kpipe_then(#then))
        }
        None => quote!(#rt::__private::no_transform(#source_var)),
    };
    let dest = &route.destination.1;
    let dest_call = quote_spanned!(dest.span()=> Self::#dest());
    let deliver = quote! {
        #linked_var.__kpipe_into(&<Self as #rt::__private::Pipeline>::SPEC.deliveries[#i], #dest_call)
    };
    quote! {
        let #source_var = #source;
        let #linked_var = #linked;
        #deliver
    }
}
