//! The static `PipelineSpec` literal: plain data, no behaviour.

use crate::model::*;
use crate::prefix::{DatePart, Part, Prefix};
use proc_macro2::{Ident, Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::Attribute;

/// Doc comment lines (`#[doc = "..."]`), trimmed and joined.
pub(crate) fn doc_text(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Tokens as readable text: `Vec<u8>` rather than `Vec < u8 >`.
pub(crate) fn tokens_text(t: &dyn ToTokens) -> String {
    let raw = t.to_token_stream().to_string();
    let mut out = String::with_capacity(raw.len());
    let chars: Vec<char> = raw.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c == ' ' {
            let prev = if i > 0 { chars[i - 1] } else { ' ' };
            let next = chars.get(i + 1).copied().unwrap_or(' ');
            let tight_before = matches!(next, '<' | '>' | ':' | ',' | '.' | ')' | ']' | '(' | '[');
            let tight_after = matches!(prev, '<' | ':' | '&' | '.' | '(' | '[');
            if tight_before || tight_after {
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn opt_str(rt: &TokenStream, v: Option<&str>) -> TokenStream {
    match v {
        Some(s) => quote!(#rt::__private::Option::Some(#s)),
        None => quote!(#rt::__private::Option::None),
    }
}

fn tags(rt: &TokenStream, tags: &[Tag]) -> TokenStream {
    let items = tags.iter().map(|t| {
        let (k, v) = (&t.key.value, &t.value.value);
        quote!(#rt::__private::spec::Tag { key: #k, value: #v })
    });
    quote!(&[#(#items),*])
}

fn buffer(rt: &TokenStream, b: &Buffer) -> TokenStream {
    let size = b.bytes.value;
    let secs = b.seconds.value as u32;
    quote!(#rt::__private::spec::Buffer { size_bytes: #size, interval_secs: #secs })
}

fn prefix(rt: &TokenStream, p: Option<&Prefix>) -> TokenStream {
    let Some(p) = p else {
        return quote!(#rt::__private::Option::None);
    };
    let raw = &p.raw;
    let parts = p.parts.iter().map(|part| match part {
        Part::Literal(s) => quote!(#rt::__private::spec::PrefixPart::Literal(#s)),
        Part::Timestamp(d) => {
            let d = d.iter().map(|d| match d {
                DatePart::Literal(s) => quote!(#rt::__private::spec::DatePart::Literal(#s)),
                DatePart::Field(letter, width) => {
                    quote!(#rt::__private::spec::DatePart::Field { letter: #letter, width: #width })
                }
            });
            quote!(#rt::__private::spec::PrefixPart::Timestamp(&[#(#d),*]))
        }
        Part::RandomString => quote!(#rt::__private::spec::PrefixPart::RandomString),
        Part::ErrorOutputType => quote!(#rt::__private::spec::PrefixPart::ErrorOutputType),
        Part::KeyFromQuery(k) => quote!(#rt::__private::spec::PrefixPart::KeyFromQuery(#k)),
        Part::KeyFromLambda(k) => quote!(#rt::__private::spec::PrefixPart::KeyFromLambda(#k)),
    });
    quote!(#rt::__private::Option::Some(#rt::__private::spec::Prefix { raw: #raw, parts: &[#(#parts),*] }))
}

fn field_path(path: &[proc_macro2::Ident]) -> String {
    path.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(".")
}

fn stream(rt: &TokenStream, s: &Stream) -> TokenStream {
    let id = s.ident.to_string();
    let name = &s.name.value;
    let record_type = tokens_text(&s.record);
    let capacity = match s.capacity.as_ref().map(|c| &c.value) {
        Some(Capacity::Provisioned { shards }) => {
            let n = shards.value as u32;
            quote!(#rt::__private::spec::Capacity::Provisioned { shards: #n })
        }
        _ => quote!(#rt::__private::spec::Capacity::OnDemand),
    };
    let retention = s.retention_hours.value as u32;
    let pk = match s.partition_key.as_ref().map(|k| &k.value) {
        Some(KeyExpr::Field(path)) => {
            let p = field_path(path);
            quote!(#rt::__private::spec::PartitionKeySource::Field(#p))
        }
        Some(KeyExpr::Random) => quote!(#rt::__private::spec::PartitionKeySource::Random),
        _ => quote!(#rt::__private::spec::PartitionKeySource::Closure),
    };
    let ehk = s.explicit_hash_key.is_some();
    let max = s.max_record_kib.value as u32;
    let kms = opt_str(rt, s.kms_key.as_ref().map(|k| k.value.as_str()));
    let tags = tags(rt, &s.tags);
    quote! {
        #rt::__private::spec::StreamSpec {
            id: #id,
            name: #name,
            record_type: #record_type,
            capacity: #capacity,
            retention_hours: #retention,
            partition_key: #pk,
            explicit_hash_key: #ehk,
            max_record_size_kib: #max,
            kms_key: #kms,
            tags: #tags,
        }
    }
}

fn transform(rt: &TokenStream, t: &Transform) -> TokenStream {
    let id = t.ident.to_string();
    let input = tokens_text(&t.input);
    let output = tokens_text(&t.output);
    let function = match t.function.as_deref() {
        Some(syn::Expr::Closure(_)) => "<closure>".to_owned(),
        Some(f) => tokens_text(f),
        None => String::new(),
    };
    let buffer = buffer(rt, &t.buffer);
    let retries = t.retries.value as u32;
    let lambda = lambda(rt, &t.lambda);
    quote! {
        #rt::__private::spec::TransformSpec {
            id: #id,
            input_type: #input,
            output_type: #output,
            function: #function,
            buffer: #buffer,
            retries: #retries,
            lambda: #lambda,
        }
    }
}

fn lambda(rt: &TokenStream, l: &Lambda) -> TokenStream {
    let lname = &l.name.value;
    let memory = l.memory_mib.value as u32;
    let timeout = l.timeout_secs.value as u32;
    let arch = match l.architecture {
        Architecture::X86_64 => quote!(X86_64),
        Architecture::Arm64 => quote!(Arm64),
    };
    let bin = &l.bin.value;
    quote! {
        #rt::__private::spec::LambdaSpec {
            name: #lname,
            memory_mib: #memory,
            timeout_secs: #timeout,
            architecture: #rt::__private::spec::Architecture::#arch,
            bin: #bin,
        }
    }
}

fn consumer(rt: &TokenStream, c: &Consumer) -> TokenStream {
    let id = c.ident.to_string();
    let stream = c
        .stream
        .as_ref()
        .map(|s| s.1.to_string())
        .unwrap_or_default();
    let function = tokens_text(&c.function);
    let batch_size = c.batch_size.value as u32;
    let position = match c.starting_position {
        Some(StartingPosition::TrimHorizon) => quote!(TrimHorizon),
        Some(StartingPosition::AtTimestamp(secs)) => quote!(AtTimestamp(#secs)),
        _ => quote!(Latest),
    };
    let bisect = c.bisect_on_error;
    let retries = match &c.maximum_retries {
        Some(r) => {
            let r = r.value as u32;
            quote!(#rt::__private::Option::Some(#r))
        }
        None => quote!(#rt::__private::Option::None),
    };
    let age = match &c.maximum_record_age_secs {
        Some(a) => {
            let a = a.value as u32;
            quote!(#rt::__private::Option::Some(#a))
        }
        None => quote!(#rt::__private::Option::None),
    };
    let window = c.batch_window_secs.value as u32;
    let parallelization = c.parallelization.value as u32;
    let on_failure = match &c.on_failure {
        Some(dest) => {
            let (kind, target) = match &dest.value {
                OnFailure::Sqs(t) => (quote!(Sqs), t),
                OnFailure::Sns(t) => (quote!(Sns), t),
                OnFailure::S3(t) => (quote!(S3), t),
            };
            quote!(#rt::__private::Option::Some(#rt::__private::spec::OnFailure::#kind(#target)))
        }
        None => quote!(#rt::__private::Option::None),
    };
    let filters = c.filters.iter().map(|f| &f.value);
    let tumbling = match &c.tumbling_window_secs {
        Some(w) => {
            let w = w.value as u32;
            quote!(#rt::__private::Option::Some(#w))
        }
        None => quote!(#rt::__private::Option::None),
    };
    let lambda = lambda(rt, &c.lambda);
    quote! {
        #rt::__private::spec::ConsumerSpec {
            id: #id,
            stream: #stream,
            function: #function,
            batch_size: #batch_size,
            starting_position: #rt::__private::spec::StartingPosition::#position,
            bisect_on_error: #bisect,
            maximum_retries: #retries,
            maximum_record_age_secs: #age,
            batch_window_secs: #window,
            parallelization: #parallelization,
            tumbling_window_secs: #tumbling,
            on_failure: #on_failure,
            filters: &[#(#filters),*],
            lambda: #lambda,
        }
    }
}

/// `SensorLake` -> `sensor_lake`: the default Glue database of a pipeline.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 && !out.ends_with('_') {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

fn conversion(rt: &TokenStream, p: &Pipeline, s: &S3, c: &Conversion) -> TokenStream {
    let spec = quote!(#rt::__private::spec);
    let format = match &c.format {
        ColumnarFormat::Parquet {
            compression,
            block_size,
            page_size,
            writer_version,
        } => {
            let compression = Ident::new(compression, Span::call_site());
            let version = Ident::new(writer_version, Span::call_site());
            let (block, page) = (block_size.value, page_size.value);
            quote!(#spec::ColumnarFormat::Parquet {
                compression: #spec::ParquetCompression::#compression,
                block_size_bytes: #block,
                page_size_bytes: #page,
                writer_version: #spec::ParquetWriterVersion::#version,
            })
        }
        ColumnarFormat::Orc {
            compression,
            stripe_size,
            block_size,
        } => {
            let compression = Ident::new(compression, Span::call_site());
            let (stripe, block) = (stripe_size.value, block_size.value);
            quote!(#spec::ColumnarFormat::Orc {
                compression: #spec::OrcCompression::#compression,
                stripe_size_bytes: #stripe,
                block_size_bytes: #block,
            })
        }
    };
    let database = c
        .database
        .as_ref()
        .map_or_else(|| snake_case(&p.ident.to_string()), |d| d.value.clone());
    let table = c
        .table
        .as_ref()
        .map_or_else(|| s.ident.to_string().to_lowercase(), |t| t.value.clone());
    let create = c.create;
    let timestamps = c.timestamps.iter().map(|t| &t.value);
    // Spanned at `format:`, where a missing `parquet` feature is reported.
    let ty = &s.record;
    let schema_of = quote_spanned!(c.range.start()=> #rt::__private::schema_of::<#ty>);
    quote! {
        #rt::__private::Option::Some(#spec::ConversionSpec {
            format: #format,
            table: #spec::GlueTableSpec {
                database: #database,
                name: #table,
                create: #create,
                timestamps: &[#(#timestamps),*],
            },
            schema: #rt::schema::RecordSchema(#schema_of),
        })
    }
}

fn s3(rt: &TokenStream, p: &Pipeline, s: &S3) -> TokenStream {
    let conversion = match &s.conversion {
        Some(c) => conversion(rt, p, s, c),
        None => quote!(#rt::__private::Option::None),
    };
    let id = s.ident.to_string();
    let record_type = tokens_text(&s.record);
    let bucket = &s.bucket.value;
    let create = s.create_bucket;
    let prefix_t = prefix(rt, s.prefix.as_ref().map(|p| &p.value));
    let error_prefix = prefix(rt, s.error_prefix.as_ref().map(|p| &p.value));
    let buffer = buffer(rt, &s.buffer);
    let compression = match s.compression {
        Compression::None => quote!(None),
        Compression::Gzip => quote!(Gzip),
        Compression::Zip => quote!(Zip),
        Compression::Snappy => quote!(Snappy),
        Compression::HadoopSnappy => quote!(HadoopSnappy),
    };
    let ext = opt_str(rt, s.file_extension.as_ref().map(|e| e.value.as_str()));
    let tz = opt_str(rt, s.time_zone.as_ref().map(|e| e.value.as_str()));
    let keys = s.partition_keys.iter().map(|k| {
        let name = k.ident.to_string();
        let source = match &k.expr {
            KeyExpr::Field(path) => {
                let jq = format!(".{}", field_path(path));
                quote!(#rt::__private::spec::KeySource::Query(#jq))
            }
            _ => quote!(#rt::__private::spec::KeySource::Lambda),
        };
        quote!(#rt::__private::spec::PartitionKeySpec { name: #name, source: #source })
    });
    let newline = s.newline;
    let kms = opt_str(rt, s.kms_key.as_ref().map(|k| k.value.as_str()));
    quote! {
        #rt::__private::spec::S3Spec {
            id: #id,
            record_type: #record_type,
            bucket: #bucket,
            create_bucket: #create,
            prefix: #prefix_t,
            error_prefix: #error_prefix,
            buffer: #buffer,
            compression: #rt::__private::spec::Compression::#compression,
            file_extension: #ext,
            time_zone: #tz,
            partition_keys: &[#(#keys),*],
            newline: #newline,
            kms_key: #kms,
            conversion: #conversion,
        }
    }
}

fn delivery(rt: &TokenStream, p: &Pipeline, d: &Delivery) -> TokenStream {
    let id = d.ident.to_string();
    let name = &d.name.value;
    let (source, transform, destination) = match &d.route {
        Some(r) => (
            match &r.source {
                Source::Stream(i, _) => {
                    let s = p.streams[*i].ident.to_string();
                    quote!(#rt::__private::spec::SourceSpec::Stream(#s))
                }
                Source::Direct => quote!(#rt::__private::spec::SourceSpec::Direct),
            },
            opt_str(
                rt,
                r.transform.as_ref().map(|(_, i)| i.to_string()).as_deref(),
            ),
            r.destination.1.to_string(),
        ),
        // Unresolved (already reported): keep the item so the rest still compiles.
        None => (
            quote!(#rt::__private::spec::SourceSpec::Direct),
            quote!(#rt::__private::Option::None),
            String::new(),
        ),
    };
    let role = opt_str(rt, d.role_arn.as_ref().map(|r| r.value.as_str()));
    let backup = opt_str(rt, d.backup.as_ref().map(|(_, i)| i.to_string()).as_deref());
    let tags = tags(rt, &d.tags);
    // Direct PUT: encrypted with an AWS-owned key unless declared otherwise (free, and what a
    // demanding user expects); from a stream: the stream's encryption applies.
    let direct = matches!(d.route.as_ref().map(|r| &r.source), Some(Source::Direct));
    let encryption = match d.encryption.as_ref().map(|e| &e.value) {
        Some(DeliveryEncryption::Kms(arn)) => {
            quote!(#rt::__private::spec::DeliveryEncryption::Kms(#arn))
        }
        Some(DeliveryEncryption::AwsOwned) => {
            quote!(#rt::__private::spec::DeliveryEncryption::AwsOwned)
        }
        None if direct => quote!(#rt::__private::spec::DeliveryEncryption::AwsOwned),
        _ => quote!(#rt::__private::spec::DeliveryEncryption::None),
    };
    quote! {
        #rt::__private::spec::DeliverySpec {
            id: #id,
            name: #name,
            source: #source,
            transform: #transform,
            backup: #backup,
            destination: #destination,
            role_arn: #role,
            tags: #tags,
            encryption: #encryption,
        }
    }
}

/// The `PipelineSpec { ... }` expression (const-evaluable).
pub(crate) fn pipeline_spec(rt: &TokenStream, p: &Pipeline) -> TokenStream {
    let name = p.ident.to_string();
    let doc = doc_text(&p.attrs);
    let region = opt_str(rt, p.region.as_ref().map(|r| r.value.as_str()));
    let tags = tags(rt, &p.tags);
    let streams = p.streams.iter().map(|s| stream(rt, s));
    let transforms = p.transforms.iter().map(|t| transform(rt, t));
    let destinations = p.destinations.iter().map(|s| s3(rt, p, s));
    let deliveries = p.deliveries.iter().map(|d| delivery(rt, p, d));
    let consumers = p.consumers.iter().map(|c| consumer(rt, c));
    quote! {
        #rt::__private::spec::PipelineSpec {
            name: #name,
            doc: #doc,
            region: #region,
            tags: #tags,
            streams: &[#(#streams),*],
            transforms: &[#(#transforms),*],
            destinations: &[#(#destinations),*],
            deliveries: &[#(#deliveries),*],
            consumers: &[#(#consumers),*],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_text_is_compact() {
        let t: syn::Type = syn::parse_quote!(Vec<std::collections::HashMap<String, u8>>);
        assert_eq!(
            tokens_text(&t),
            "Vec<std::collections::HashMap<String, u8>>"
        );
        let t: syn::Type = syn::parse_quote!(&'static str);
        assert_eq!(tokens_text(&t), "&'static str");
    }
}
