//! The lowered pipeline: defaults applied, units converted, names resolved. Every value
//! keeps the range of the tokens it came from, so validation can point at them.
//! Invalid parts are kept (with a fallback value) and marked, not dropped, so expansion
//! can still emit the items the user refers to.

use crate::diagnostic::Range;
use crate::prefix::Prefix;
use proc_macro2::Ident;
use syn::{Attribute, Type, Visibility};

/// A value with the range of the tokens it came from.
#[derive(Clone, Debug)]
pub(crate) struct Sp<T> {
    pub(crate) value: T,
    pub(crate) range: Range,
}

impl<T> Sp<T> {
    pub(crate) fn new(value: T, range: impl Into<Range>) -> Self {
        Sp {
            value,
            range: range.into(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) ident: Ident,
    pub(crate) region: Option<Sp<String>>,
    pub(crate) tags: Vec<Tag>,
    pub(crate) streams: Vec<Stream>,
    pub(crate) transforms: Vec<Transform>,
    pub(crate) destinations: Vec<S3>,
    pub(crate) deliveries: Vec<Delivery>,
    pub(crate) consumers: Vec<Consumer>,
}

#[derive(Clone, Debug)]
pub(crate) struct Tag {
    pub(crate) key: Sp<String>,
    pub(crate) value: Sp<String>,
}

#[derive(Debug)]
pub(crate) enum Capacity {
    Provisioned { shards: Sp<u64> },
    OnDemand,
}

/// How a record yields a key: a field path, a closure, or (stream keys only) random.
#[derive(Debug)]
pub(crate) enum KeyExpr {
    /// `sensor_id`, `.site`, `.meta.site`
    Field(Vec<Ident>),
    /// `|r: &Reading| ...`
    Closure(Box<syn::Expr>),
    /// `random`: a fresh UUID per record.
    Random,
}

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    pub(crate) record: Type,
    pub(crate) name: Sp<String>,
    pub(crate) capacity: Option<Sp<Capacity>>,
    pub(crate) retention_hours: Sp<u64>,
    pub(crate) partition_key: Option<Sp<KeyExpr>>,
    pub(crate) explicit_hash_key: Option<Box<syn::Expr>>,
    pub(crate) max_record_kib: Sp<u64>,
    pub(crate) kms_key: Option<Sp<String>>,
    pub(crate) tags: Vec<Tag>,
}

#[derive(Debug)]
pub(crate) struct Buffer {
    pub(crate) bytes: Sp<u64>,
    pub(crate) seconds: Sp<u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Architecture {
    X86_64,
    Arm64,
}

#[derive(Debug)]
pub(crate) struct Lambda {
    pub(crate) name: Sp<String>,
    pub(crate) memory_mib: Sp<u64>,
    pub(crate) timeout_secs: Sp<u64>,
    pub(crate) architecture: Architecture,
    pub(crate) bin: Sp<String>,
}

#[derive(Debug)]
pub(crate) struct Transform {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    pub(crate) input: Type,
    pub(crate) output: Type,
    pub(crate) function: Option<Box<syn::Expr>>,
    pub(crate) buffer: Buffer,
    pub(crate) retries: Sp<u64>,
    pub(crate) lambda: Lambda,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zip,
    Snappy,
    HadoopSnappy,
}

#[derive(Debug)]
pub(crate) struct PartitionKey {
    pub(crate) ident: Ident,
    pub(crate) expr: KeyExpr,
    pub(crate) range: Range,
}

impl PartitionKey {
    /// Field-path keys are evaluated by Firehose itself (`partitionKeyFromQuery`, jq);
    /// closures run in the transform's Lambda (`partitionKeyFromLambda`).
    pub(crate) fn is_query(&self) -> bool {
        matches!(self.expr, KeyExpr::Field(_))
    }
}

#[derive(Debug)]
pub(crate) struct S3 {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    pub(crate) record: Type,
    pub(crate) bucket: Sp<String>,
    pub(crate) create_bucket: bool,
    pub(crate) prefix: Option<Sp<Prefix>>,
    pub(crate) error_prefix: Option<Sp<Prefix>>,
    pub(crate) buffer: Buffer,
    pub(crate) compression: Compression,
    /// Where `compression` was declared, if it was.
    pub(crate) compression_range: Option<Range>,
    pub(crate) file_extension: Option<Sp<String>>,
    pub(crate) time_zone: Option<Sp<String>>,
    pub(crate) partition_keys: Vec<PartitionKey>,
    pub(crate) newline: bool,
    /// SSE-KMS with this key ARN; `None` is SSE-S3 (S3's default).
    pub(crate) kms_key: Option<Sp<String>>,
    /// `format: parquet` / `orc`: record format conversion; `None` is JSON lines.
    pub(crate) conversion: Option<Conversion>,
}

/// Record format conversion of an S3 destination (`format:` and `table:`).
#[derive(Debug)]
pub(crate) struct Conversion {
    /// The `format:` value, for errors about the conversion as a whole.
    pub(crate) range: Range,
    pub(crate) format: ColumnarFormat,
    /// `table: { database: ... }`; `None` is the pipeline's name in snake case.
    pub(crate) database: Option<Sp<String>>,
    /// `table: { name: ... }`; `None` is the destination's identifier.
    pub(crate) table: Option<Sp<String>>,
    /// `table: { create: false }` uses an existing table as it is.
    pub(crate) create: bool,
    /// `table: { timestamps: [observed_at, meta.sent_at] }`.
    pub(crate) timestamps: Vec<Sp<String>>,
}

#[derive(Debug)]
pub(crate) enum ColumnarFormat {
    Parquet {
        compression: &'static str,
        block_size: Sp<u64>,
        page_size: Sp<u64>,
        writer_version: &'static str,
    },
    Orc {
        compression: &'static str,
        stripe_size: Sp<u64>,
        block_size: Sp<u64>,
    },
}

impl S3 {
    pub(crate) fn dynamic_partitioning(&self) -> bool {
        !self.partition_keys.is_empty()
    }
}

/// Where a delivery's records come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// A declared stream (index into `Pipeline::streams`).
    Stream(usize, Ident),
    /// `direct`: producers put records into the delivery stream itself (Direct PUT).
    Direct,
}

#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    pub(crate) name: Sp<String>,
    pub(crate) role_arn: Option<Sp<String>>,
    pub(crate) tags: Vec<Tag>,
    /// `encryption:` as written; `None` takes the default (see `lower::delivery`).
    pub(crate) encryption: Option<Sp<DeliveryEncryption>>,
    /// `s3_backup: raw`: index into `Pipeline::destinations`, with the ident as written.
    pub(crate) backup: Option<(usize, Ident)>,
    /// `None` when the route did not resolve (already reported).
    pub(crate) route: Option<Route>,
}

/// Server-side encryption of a Direct PUT delivery stream's data at rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DeliveryEncryption {
    None,
    /// `AWS_OWNED_CMK`.
    AwsOwned,
    /// `CUSTOMER_MANAGED_CMK` with this key ARN.
    Kms(String),
}

#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) source: Source,
    /// Index into `Pipeline::transforms`, with the ident as written in the route.
    pub(crate) transform: Option<(usize, Ident)>,
    /// Index into `Pipeline::destinations`, with the ident as written in the route.
    pub(crate) destination: (usize, Ident),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StartingPosition {
    Latest,
    TrimHorizon,
    /// `at_timestamp("2026-12-01T00:00:00Z")`, in seconds since the Unix epoch.
    AtTimestamp(i64),
}

/// `consumer alerts: readings -> crate::alert { ... }`: a Lambda function reading a stream
/// through an event source mapping.
#[derive(Debug)]
pub(crate) struct Consumer {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) ident: Ident,
    /// Index into `Pipeline::streams`, with the ident as written; `None` when it did not
    /// resolve (already reported).
    pub(crate) stream: Option<(usize, Ident)>,
    pub(crate) function: syn::ExprPath,
    pub(crate) batch_size: Sp<u64>,
    /// `None` when missing (already reported).
    pub(crate) starting_position: Option<StartingPosition>,
    pub(crate) bisect_on_error: bool,
    /// `None`: retry until the records expire (AWS's -1).
    pub(crate) maximum_retries: Option<Sp<u64>>,
    /// `None`: records never expire (AWS's -1).
    pub(crate) maximum_record_age_secs: Option<Sp<u64>>,
    pub(crate) batch_window_secs: Sp<u64>,
    pub(crate) parallelization: Sp<u64>,
    /// `tumbling_window: 60s`: the function path names an `Aggregate` type.
    pub(crate) tumbling_window_secs: Option<Sp<u64>>,
    /// `on_failure: sqs("...")`: where discarded batches are recorded.
    pub(crate) on_failure: Option<Sp<OnFailure>>,
    /// `filter_criteria: ["{...}", ...]`: the event filtering patterns, as written.
    pub(crate) filters: Vec<Sp<String>>,
    pub(crate) lambda: Lambda,
}

/// An event source mapping's on-failure destination, by name or ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum OnFailure {
    Sqs(String),
    Sns(String),
    S3(String),
}
