//! `transform NAME: In -> Out { ... }`: the Lambda function Firehose invokes, and the
//! `lambda: { ... }` settings transforms and consumers share.

use super::{
    DEFAULT_LAMBDA_MEMORY_MIB, DEFAULT_LAMBDA_TIMEOUT_SECS, DEFAULT_PROCESSOR_BUFFER_BYTES,
    DEFAULT_PROCESSOR_BUFFER_SECS, DEFAULT_RETRIES, body, kebab, keyed, missing,
};
use crate::ast::{FieldAst, StageAst, ValueAst};
use crate::diagnostic::Diagnostics;
use crate::model::*;
use crate::value::{self, MIB};
use proc_macro2::Ident;

const TRANSFORM_KEYS: &[&str] = &["function", "buffer", "retries", "lambda"];

const LAMBDA_KEYS: &[&str] = &["name", "memory", "timeout", "architecture", "bin"];

pub(super) fn transform(
    d: &mut Diagnostics,
    pipeline: &Ident,
    stage: &StageAst,
    input: &syn::Type,
    output: &syn::Type,
) -> Transform {
    let what = format!("transform `{}`", stage.name);
    let keys = keyed(d, body(stage), TRANSFORM_KEYS, &what);
    let (input, output) = (input.clone(), output.clone());
    let function = match keys.get("function") {
        Some(f) => match &f.value {
            ValueAst::Closure(c) => Some(c.clone()),
            ValueAst::Tokens(t) => match syn::parse2::<syn::ExprPath>(t.clone()) {
                Ok(p) => Some(Box::new(syn::Expr::Path(p))),
                Err(_) => {
                    d.error_spanned(
                        t,
                        "expected a function path like `crate::enrich`, or a closure",
                    );
                    None
                }
            },
            ValueAst::Block(span, _) => {
                d.error(
                    *span,
                    "expected a function path like `crate::enrich`, or a closure",
                );
                None
            }
        },
        None => {
            missing(d, stage, "function", "add `function: crate::my_function`");
            None
        }
    };
    let (bytes, secs) = keys
        .get("buffer")
        .map(|f| value::buffer(d, f))
        .unwrap_or_default();
    let buffer = Buffer {
        bytes: bytes.unwrap_or(Sp::new(DEFAULT_PROCESSOR_BUFFER_BYTES, stage.name.span())),
        seconds: secs.unwrap_or(Sp::new(DEFAULT_PROCESSOR_BUFFER_SECS, stage.name.span())),
    };
    let retries = keys
        .get("retries")
        .and_then(|f| value::integer(d, f))
        .unwrap_or(Sp::new(DEFAULT_RETRIES, stage.name.span()));
    let lambda = lambda(d, pipeline, stage, keys.get("lambda").copied(), &what);
    Transform {
        attrs: stage.attrs.clone(),
        ident: stage.name.clone(),
        input,
        output,
        function,
        buffer,
        retries,
        lambda,
    }
}

/// The `lambda: { name, memory, timeout, architecture, bin }` settings of a transform or
/// consumer.
pub(super) fn lambda(
    d: &mut Diagnostics,
    pipeline: &Ident,
    stage: &StageAst,
    field: Option<&FieldAst>,
    what: &str,
) -> Lambda {
    let lambda_fields = field.and_then(|f| value::block(d, f)).unwrap_or(&[]);
    let lk = keyed(
        d,
        lambda_fields,
        LAMBDA_KEYS,
        &format!("the `lambda` settings of {what}"),
    );
    let name = lk
        .get("name")
        .and_then(|f| value::string(d, f))
        .unwrap_or_else(|| {
            Sp::new(
                format!("{}-{}", kebab(pipeline), kebab(&stage.name)),
                stage.name.span(),
            )
        });
    let memory_mib = match lk.get("memory").and_then(|f| value::size(d, f)) {
        Some(b) if b.value % MIB != 0 => {
            d.error(b.range, "Lambda memory is set in whole MiB, like `512MiB`");
            Sp::new(DEFAULT_LAMBDA_MEMORY_MIB, b.range)
        }
        Some(b) => Sp::new(b.value / MIB, b.range),
        None => Sp::new(DEFAULT_LAMBDA_MEMORY_MIB, stage.name.span()),
    };
    let timeout_secs = lk
        .get("timeout")
        .and_then(|f| value::duration(d, f))
        .unwrap_or(Sp::new(DEFAULT_LAMBDA_TIMEOUT_SECS, stage.name.span()));
    let architecture = match lk
        .get("architecture")
        .and_then(|f| value::word(d, f, &["x86_64", "arm64"]))
    {
        Some(w) if w.value == "arm64" => Architecture::Arm64,
        _ => Architecture::X86_64,
    };
    // The crate's bin target that serves the stage (`lambda_main!`), which `apply` builds:
    // `<stage>_lambda` unless named.
    let bin = match lk.get("bin").and_then(|f| value::string(d, f)) {
        Some(b)
            if b.value.is_empty()
                || !b
                    .value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            d.error(
                b.range,
                "a bin target name has letters, digits, `_` and `-`, like `\"enrich_lambda\"`",
            );
            Sp::new(format!("{}_lambda", stage.name), b.range)
        }
        Some(b) => b,
        None => Sp::new(format!("{}_lambda", stage.name), stage.name.span()),
    };
    Lambda {
        name,
        memory_mib,
        timeout_secs,
        architecture,
        bin,
    }
}
