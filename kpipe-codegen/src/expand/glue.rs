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

/// `#rt::__private::TRAIT::<ARGS, _>::into_dyn(f)` with the trait named by a single identifier
/// at the user's function (brought in by a `use` with the macro's span). rustc then reports a
/// function of the wrong shape at that function with the trait's own message, and neither
/// draws the whole `pipeline!` invocation (as it does for a callee path that starts at the
/// macro's call-site span; `$crate` cannot be respanned, it resolves by its span) nor points
/// into kpipe's code (as it does for a bound on a generic function's parameter).
fn erase_at<F: quote::ToTokens + Spanned>(
    rt: &TokenStream,
    name: &str,
    args: TokenStream,
    f: &F,
) -> TokenStream {
    let trait_ = Ident::new(name, Span::call_site());
    let alias = Ident::new(&format!("__kpipe_{name}"), Span::call_site());
    let at_f = Ident::new(&format!("__kpipe_{name}"), f.span());
    let call = quote_spanned!(f.span()=> #at_f::<#args, _>::into_dyn(#f));
    quote!({
        use #rt::__private::#trait_ as #alias;
        #call
    })
}

const UNREACHABLE: &str = "kpipe: this pipeline declaration has errors";

fn unreachable(rt: &TokenStream) -> TokenStream {
    quote!(#rt::__private::unreachable!(#UNREACHABLE))
}

/// `codec::<T>("T")`, spanned at the user's type so a `T` that is not a record is reported there
/// (with one error: `Record`'s blanket impl is `do_not_recommend`).
fn codec(rt: &TokenStream, ty: &syn::Type) -> TokenStream {
    let name = tokens_text(ty);
    quote_spanned!(ty.span()=> #rt::__private::codec::<#ty>(#name))
}

/// A `fn(&T) -> String` producing a key from a field path or a closure.
fn key_fn(rt: &TokenStream, ty: &syn::Type, key: &KeyExpr, range: Span) -> TokenStream {
    // The parameter keeps a call-site span (hygiene); the trait that turns the value into a
    // key is named at the user's tokens (see `erase_at`), so a key that is not `Display` is
    // reported at the field or closure.
    let r = Ident::new("__kpipe_r", Span::call_site());
    let alias = Ident::new("__kpipe_PartitionKeyValue", Span::call_site());
    let import = quote!(use #rt::__private::PartitionKeyValue as #alias;);
    match key {
        KeyExpr::Field(path) => {
            let at = Ident::new("__kpipe_PartitionKeyValue", range);
            let call = quote_spanned!(range=> #at::to_key(&#r.#(#path).*));
            quote!(|#r: &#ty| { #import #call })
        }
        KeyExpr::Closure(c) => {
            let at = Ident::new("__kpipe_PartitionKeyValue", c.span());
            let c = typed_closure(c, ty);
            let call = quote_spanned!(c.span()=> #at::to_key(&(#c)(#r)));
            quote!(|#r: &#ty| { #import #call })
        }
        KeyExpr::Random => quote!(|_: &#ty| #rt::__private::random_partition_key()),
    }
}

/// A key closure with its parameter's type written in when the user left it out: the macro
/// knows it is `&Record`, and rustc cannot infer the parameter of a closure that is called
/// on the spot (`|v| v.site.clone()` becomes `|v: &PageView| v.site.clone()`). An annotated
/// closure is left as it is.
fn typed_closure(c: &syn::Expr, ty: &syn::Type) -> syn::Expr {
    let mut c = c.clone();
    if let syn::Expr::Closure(closure) = &mut c
        && let [input] = &mut closure.inputs.iter_mut().collect::<Vec<_>>()[..]
        && !matches!(input, syn::Pat::Type(_))
    {
        let pat = std::mem::replace(*input, syn::Pat::Verbatim(TokenStream::new()));
        let span = pat.span();
        **input = syn::Pat::Type(syn::PatType {
            attrs: Vec::new(),
            pat: Box::new(pat),
            colon_token: syn::Token![:](span),
            ty: Box::new(syn::parse_quote_spanned!(span=> &#ty)),
        });
    }
    c
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
                let c = typed_closure(c, ty);
                let call = quote_spanned!(c.span()=> #rt::__private::explicit_hash_key);
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
                let erased = erase_at(rt, "TransformFn", quote!(#input, #output), f);
                quote! {
                    #rt::__private::transform(
                        &<Self as #rt::__private::Pipeline>::SPEC.transforms[#i],
                        #ci,
                        #co,
                        #erased,
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
    for (i, s) in p.destinations.iter().enumerate() {
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
            Some(route) => delivery_body(p, rt, i, route, d.backup.as_ref().map(|(_, b)| b)),
            None => unreachable(rt),
        };
        out.extend(quote! {
            #attrs
            // The blocks around locals carry the stages' spans (see `delivery_body`).
            #[allow(unused_braces)]
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
                let ty = &p.streams[*s].record;
                let spec = quote!(&<Self as #rt::__private::Pipeline>::SPEC.consumers[#i]);
                let call = if c.tumbling_window_secs.is_some() {
                    // The path names the aggregate type; rustc reports one that is not an
                    // `Aggregate` of the stream's records at it.
                    let aggregate = &f.path;
                    let windowed = quote_spanned!(aggregate.span()=> <#aggregate as #rt::__private::AggregateOf<#ty>>::__kpipe_windowed);
                    quote!(#windowed(#spec, Self::#stream().codec()))
                } else {
                    let erased = erase_at(rt, "ConsumeFn", quote!(#ty), f);
                    quote!(#rt::__private::consumer(#spec, Self::#stream().codec(), #erased))
                };
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
//     use $crate::__private::Flows as __kpipe_Flows;
//     let __kpipe_source = Self::readings().codec();
//     let __kpipe_linked = __kpipe_Flows::__kpipe_then(__kpipe_source, Self::enrich()); // at `enrich`
//     __kpipe_Flows::__kpipe_into(__kpipe_linked, &SPEC.deliveries[i], Self::lake())    // at `lake`
fn delivery_body(
    p: &Pipeline,
    rt: &TokenStream,
    i: usize,
    route: &Route,
    backup: Option<&Ident>,
) -> TokenStream {
    let source = match &route.source {
        Source::Stream(_, ident) => quote!(Self::#ident().codec()),
        Source::Direct => {
            // Direct PUT records have the type of the stage they enter.
            let ty = match &route.transform {
                Some((t, _)) => &p.transforms[*t].input,
                None => &p.destinations[route.destination.0].record,
            };
            codec(rt, ty)
        }
    };
    // Locals are interpolated with call-site spans: a local spanned at the user's tokens
    // would not resolve (macro hygiene).
    let source_var = Ident::new("__kpipe_source", Span::call_site());
    let linked_var = Ident::new("__kpipe_linked", Span::call_site());
    // `Flows::__kpipe_then(source, transform)` and `Flows::__kpipe_into(linked, spec, dest)`,
    // each with `Flows` named at the stage it checks (see `erase_at`). The local goes in a
    // block spanned at the stage: rustc points at the argument that fixes `Self`, and the
    // local itself must keep its call-site span to resolve.
    let flows = Ident::new("__kpipe_Flows", Span::call_site());
    let linked = match &route.transform {
        Some((_, t)) => {
            let at_t = Ident::new("__kpipe_Flows", t.span());
            let then = quote_spanned!(t.span()=> Self::#t());
            quote_spanned!(t.span()=> #at_t::__kpipe_then({ #source_var }, #then))
        }
        None => quote!(#rt::__private::no_transform(#source_var)),
    };
    let dest = &route.destination.1;
    let dest_call = quote_spanned!(dest.span()=> Self::#dest());
    let at_dest = Ident::new("__kpipe_Flows", dest.span());
    let spec = quote!(&<Self as #rt::__private::Pipeline>::SPEC.deliveries[#i]);
    let deliver =
        quote_spanned!(dest.span()=> #at_dest::__kpipe_into({ #linked_var }, #spec, #dest_call));
    // `s3_backup: raw`: the backup takes the source's records, checked at `raw`.
    let backup = backup.map(|b| {
        let at_b = Ident::new("__kpipe_Flows", b.span());
        let call = quote_spanned!(b.span()=> Self::#b());
        quote_spanned!(b.span()=> #at_b::__kpipe_backup({ &#source_var }, #call);)
    });
    quote! {
        use #rt::__private::Flows as #flows;
        let #source_var = #source;
        #backup
        let #linked_var = #linked;
        #deliver
    }
}
