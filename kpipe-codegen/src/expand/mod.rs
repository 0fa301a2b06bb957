//! Model to tokens. The output is small and boring: a unit struct, its static spec
//! ([`spec`]), and one associated function per stage that hands the user's types and
//! functions to `kpipe-runtime` ([`glue`]). Everything that does something lives in the runtime.
//!
//! Invalid parts still expand (with `unreachable!` bodies where nothing sensible exists), so
//! the items users refer to exist even while the declaration has errors.

mod glue;
pub(crate) mod spec;

use crate::model::Pipeline;
use proc_macro2::TokenStream;
use quote::quote;

/// Expands one lowered pipeline; `rt` is the path of the runtime crate.
pub(crate) fn pipeline(p: &Pipeline, rt: &TokenStream) -> TokenStream {
    let attrs = &p.attrs;
    let vis = &p.vis;
    let name = &p.ident;
    let spec = spec::pipeline_spec(rt, p);
    let stage_fns = glue::stage_fns(p, rt);
    let deliveries = p.deliveries.iter().map(|d| {
        let ident = &d.ident;
        quote!(Self::#ident())
    });
    let consumers = p.consumers.iter().map(|c| {
        let ident = &c.ident;
        quote!(#rt::__private::AnyConsumer::from(Self::#ident()))
    });
    let streams = p.streams.iter().map(|s| {
        let ident = &s.ident;
        quote!(#rt::__private::AnyStream::from(Self::#ident()))
    });
    quote! {
        #(#attrs)*
        #[derive(
            ::core::clone::Clone,
            ::core::marker::Copy,
            ::core::fmt::Debug,
            ::core::default::Default,
            ::core::cmp::PartialEq,
            ::core::cmp::Eq,
            ::core::hash::Hash,
        )]
        #vis struct #name;

        #[allow(dead_code, non_snake_case, clippy::all)]
        impl #name {
            /// The pipeline's static description: streams, transforms, destinations and
            /// deliveries, with every default applied.
            #vis const fn spec() -> &'static #rt::__private::spec::PipelineSpec {
                <Self as #rt::__private::Pipeline>::SPEC
            }

            /// Configures the local engine for this pipeline: `.start()` runs it in-process
            /// with Firehose's behaviour.
            #vis fn local() -> #rt::__private::Local<Self> {
                #rt::__private::local::<Self>()
            }

            /// A CloudFormation template of this pipeline (streams, buckets, delivery
            /// streams, Lambda functions, least-privilege roles).
            #vis fn cloudformation() -> #rt::__private::JsonValue {
                #rt::__private::cloudformation(Self::spec())
            }

            /// Provisioning of this pipeline with an AWS configuration: `plan()`, `apply()`,
            /// `destroy()` (feature `aws` of kpipe-runtime).
            #vis fn aws(config: &#rt::__private::SdkConfig) -> #rt::__private::AwsOf<Self> {
                #rt::__private::aws::<Self>(config)
            }

            /// The pipeline's command line: `run`, `synth`, `spec`, `estimate`, `plan`,
            /// `apply`, `destroy` (feature `cli` of kpipe-runtime).
            /// `fn main() -> ExitCode { Telemetry::main() }`.
            #vis fn main() -> ::std::process::ExitCode {
                #rt::__private::cli_main::<Self>()
            }

            #stage_fns
        }

        #[automatically_derived]
        #[allow(clippy::all)]
        impl #rt::__private::Pipeline for #name {
            const SPEC: &'static #rt::__private::spec::PipelineSpec = &#spec;

            fn deliveries() -> #rt::__private::Vec<#rt::__private::DeliveryDef> {
                #rt::__private::Vec::from([#(#deliveries),*])
            }

            fn streams() -> #rt::__private::Vec<#rt::__private::AnyStream> {
                #rt::__private::Vec::from([#(#streams),*])
            }

            fn consumers() -> #rt::__private::Vec<#rt::__private::AnyConsumer> {
                #rt::__private::Vec::from([#(#consumers),*])
            }
        }
    }
}
