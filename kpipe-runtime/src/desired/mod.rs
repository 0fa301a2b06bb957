//! What a pipeline needs in AWS, as one desired state that both provisioning paths render:
//! its streams, delivery streams (with their processors and error logging) and event source
//! mappings, the IAM roles with their trust and statements, the bucket policies, and the tags. The CloudFormation template
//! ([`crate::cloudformation`]) writes it with intrinsic functions; `apply` (feature `aws`)
//! resolves the references and writes the same documents through the SDK.
//!
//! References are CloudFormation `Fn::Sub` text ([`Sub`]): `${AWS::Partition}`,
//! `${AWS::Region}`, `${AWS::AccountId}`, and `${<LogicalId>.Arn}` for the pipeline's own
//! resources. The partition follows from the region (`aws-cn` in China, `aws-us-gov` in
//! GovCloud), so no ARN is written with `arn:aws:` by hand.
//!
//! ```
//! # use serde::{Deserialize, Serialize};
//! # #[derive(Serialize, Deserialize)] pub struct Event { user: String }
//! kpipe_runtime::pipeline! {
//!     pipeline Clicks {
//!         stream events: Event { capacity: on_demand, partition_key: user }
//!         s3 archive: Event { bucket: "acme-clicks" }
//!         delivery to_archive: events -> archive;
//!     }
//! }
//! use kpipe_runtime::desired::{Env, roles};
//! let role = &roles(Clicks::spec())[0];
//! let env = Env::new(Clicks::spec(), "cn-north-1", "123456789012");
//! let policy = role.policy(&|s| s.resolve(&env).into()).to_string();
//! assert!(policy.contains("arn:aws-cn:kinesis:cn-north-1:123456789012:stream/events"));
//! ```

use crate::cloudformation::logical_id;
use crate::spec::{
    Capacity, DeliveryEncryption, LambdaSpec, ParamValue, PipelineSpec, SourceSpec, Tag,
};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::fmt;

mod policy;

pub use self::policy::{
    Condition, ERROR_LOG_STREAM, Role, Statement, bucket_policy, document, error_log_group, roles,
    stream_read,
};

/// Text with CloudFormation `Fn::Sub` references (see the module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sub(String);

impl Sub {
    /// `text`, whose `${...}` are references.
    pub fn new(text: impl Into<String>) -> Self {
        Sub(text.into())
    }

    /// The text with its references unresolved.
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The text as a template writes it: a plain string without references, `Fn::Sub`
    /// otherwise.
    pub fn cfn(&self) -> Value {
        if self.0.contains("${") {
            json!({ "Fn::Sub": self.0 })
        } else {
            json!(self.0)
        }
    }

    /// The text with every reference replaced by its value in `env`; a reference `env` does
    /// not know is left as it is.
    pub fn resolve(&self, env: &Env) -> String {
        let mut out = String::with_capacity(self.0.len());
        let mut rest = self.0.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            rest = &rest[start..];
            let Some(end) = rest.find('}') else {
                break;
            };
            match env.value(&rest[2..end]) {
                Some(v) => out.push_str(v),
                None => out.push_str(&rest[..=end]),
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// The values of references for one account and region.
#[derive(Clone, Debug)]
pub struct Env {
    values: BTreeMap<String, String>,
}

pub use crate::arn::partition;

impl Env {
    /// The references of pipeline `p` deployed in `region` of `account`: the pseudo
    /// parameters and the ARNs of its streams, functions and roles.
    pub fn new(p: &PipelineSpec, region: &str, account: &str) -> Self {
        let scope = crate::arn::Scope::new(region, account);
        let mut values = BTreeMap::new();
        values.insert("AWS::Partition".to_owned(), scope.partition.to_owned());
        values.insert("AWS::Region".to_owned(), region.to_owned());
        values.insert("AWS::AccountId".to_owned(), account.to_owned());
        for s in p.streams {
            values.insert(
                format!("{}.Arn", logical_id(s.id, "Stream")),
                scope.stream(s.name),
            );
        }
        for (id, lambda) in functions(p) {
            values.insert(
                format!("{}.Arn", logical_id(id, "Function")),
                scope.function(lambda.name),
            );
        }
        for role in roles(p) {
            values.insert(format!("{}.Arn", role.logical_id), scope.role(&role.name));
        }
        Env { values }
    }

    /// The value of reference `name` (`AWS::Region`, `ReadingsStream.Arn`, ...).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }
}

/// Every Lambda function of a pipeline: each transform's and each consumer's, by stage id.
pub fn functions(p: &PipelineSpec) -> Vec<(&'static str, &'static LambdaSpec)> {
    p.transforms
        .iter()
        .map(|t| (t.id, &t.lambda))
        .chain(p.consumers.iter().map(|c| (c.id, &c.lambda)))
        .collect()
}

/// What a stage's function is, as its description says (in the template and after `apply`).
pub fn function_description(p: &PipelineSpec, stage: &str) -> String {
    if let Some(t) = p.transform(stage) {
        format!(
            "kpipe transform `{}` ({} -> {}) of pipeline {}",
            t.id, t.input_type, t.output_type, p.name
        )
    } else if let Some(c) = p.consumer(stage) {
        format!(
            "kpipe consumer `{}` ({}) of stream `{}` of pipeline {}",
            c.id, c.function, c.stream, p.name
        )
    } else {
        format!("kpipe stage `{stage}` of pipeline {}", p.name)
    }
}

/// The tags of a resource: `kpipe:pipeline = <Pipeline>` (which marks what kpipe owns), the
/// pipeline's tags, then the resource's own.
pub fn tags(p: &PipelineSpec, own: &[Tag]) -> Vec<(String, String)> {
    let mut all = vec![(OWNER_TAG.to_owned(), p.name.to_owned())];
    for t in p.tags.iter().chain(own) {
        all.push((t.key.to_owned(), t.value.to_owned()));
    }
    all
}

/// The tag every resource kpipe creates carries, with the pipeline's name: `destroy` and
/// pruning touch only resources that carry it.
pub const OWNER_TAG: &str = "kpipe:pipeline";

/// AWS's values for settings a Describe call may leave out, which `plan` reads as the
/// declaration's defaults. The language applies the same defaults when a key is left out
/// (kpipe-codegen's `lower.rs`); `tests/pipelines.rs` checks the two agree.
pub mod aws_defaults {
    /// S3 buffer size hint, MiB ("BufferingHints",
    /// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_BufferingHints.html>).
    pub const S3_BUFFER_MIB: u32 = 5;
    /// S3 buffer interval hint, seconds (same page).
    pub const S3_BUFFER_SECS: u32 = 300;
    /// Records per batch of a Kinesis event source mapping ("Lambda parameters for Amazon
    /// Kinesis Data Streams event source mappings",
    /// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html>).
    pub const MAPPING_BATCH_SIZE: u32 = 100;
    /// Batching window of a mapping, seconds (same page).
    pub const MAPPING_BATCH_WINDOW_SECS: u32 = 0;
    /// Concurrent batches per shard of a mapping (same page).
    pub const MAPPING_PARALLELIZATION: u32 = 1;
    /// Retries of a mapping: -1 is unlimited (same page).
    pub const MAPPING_MAXIMUM_RETRIES: i64 = -1;
    /// Maximum record age of a mapping: -1 is unlimited (same page).
    pub const MAPPING_MAXIMUM_RECORD_AGE_SECS: i64 = -1;
    /// Lambda memory, MiB ("Configure Lambda function memory",
    /// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html>).
    pub const FUNCTION_MEMORY_MIB: u32 = 128;
    /// Lambda timeout, seconds ("Configure Lambda function timeout",
    /// <https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html>).
    pub const FUNCTION_TIMEOUT_SECS: u32 = 3;
    /// A stream's maximum record size, KiB ("Handle large records",
    /// <https://docs.aws.amazon.com/streams/latest/dev/large-records.html>).
    pub const MAX_RECORD_SIZE_KIB: u32 = 1024;
}

// ===== streams, delivery streams and mappings, as `plan` compares them and the template
// writes them =====

/// A stream as kpipe wants it or as AWS describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamState {
    /// Stream name.
    pub name: String,
    /// `Some(n)` provisioned with n open shards, `None` on-demand.
    pub shards: Option<u32>,
    /// Retention in hours.
    pub retention_hours: u32,
    /// Maximum record size in KiB (AWS's default is 1024).
    pub max_record_size_kib: u32,
    /// KMS key when encrypted.
    pub kms_key: Option<String>,
}

/// A delivery stream's settings that kpipe manages, normalised so that AWS's defaults compare
/// equal to an omitted setting (no phantom diffs).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryState {
    /// Delivery stream name.
    pub name: String,
    /// The source stream's name, or `None` for Direct PUT.
    pub source_stream: Option<String>,
    /// Destination bucket.
    pub bucket: String,
    /// Prefix (`None` when unset).
    pub prefix: Option<String>,
    /// Error output prefix (`None` when unset).
    pub error_prefix: Option<String>,
    /// Buffer size hint in MiB.
    pub size_mib: u32,
    /// Buffer interval hint in seconds.
    pub interval_secs: u32,
    /// `UNCOMPRESSED`, `GZIP`, `ZIP`, `Snappy`, `HADOOP_SNAPPY`.
    pub compression: String,
    /// Dynamic partitioning on.
    pub dynamic_partitioning: bool,
    /// Processors as `(type, [(parameter, value)])`, parameters sorted.
    pub processors: Vec<(String, Vec<(String, String)>)>,
    /// File extension override.
    pub file_extension: Option<String>,
    /// Time zone (`None` is UTC).
    pub time_zone: Option<String>,
    /// The CloudWatch Logs group delivery errors go to (`None`: not logged).
    pub error_log_group: Option<String>,
    /// SSE-KMS of delivered objects with this key ARN (`None`: the bucket's default).
    pub kms_key: Option<String>,
    /// Server-side encryption at rest: `AWS_OWNED_CMK`, a customer managed key's ARN, or
    /// `None` (off, and always for a stream source).
    pub encryption: Option<String>,
    /// The source record backup (`s3_backup`, S3BackupMode Enabled), if any.
    pub backup: Option<BackupState>,
    /// Record format conversion (`format: parquet`), if any.
    pub conversion: Option<ConversionState>,
}

/// A delivery stream's record format conversion (DataFormatConversionConfiguration): OpenX
/// JSON SerDe in, the Parquet or ORC SerDe out, the schema from a Glue table
/// ("Convert input data format in Amazon Data Firehose",
/// <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html>).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ConversionState {
    /// The Glue database.
    pub database: String,
    /// The Glue table.
    pub table: String,
    /// The output serializer and its settings.
    pub serde: SerdeState,
}

/// The output serializer of a conversion, with Firehose's names for its values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SerdeState {
    /// ParquetSerDe.
    Parquet {
        /// `SNAPPY`, `GZIP` or `UNCOMPRESSED`.
        compression: String,
        /// HDFS block size in bytes.
        block_size_bytes: i32,
        /// Page size in bytes.
        page_size_bytes: i32,
        /// `V1` or `V2`.
        writer_version: String,
    },
    /// OrcSerDe.
    Orc {
        /// `SNAPPY`, `ZLIB` or `NONE`.
        compression: String,
        /// Stripe size in bytes.
        stripe_size_bytes: i32,
        /// HDFS block size in bytes.
        block_size_bytes: i32,
    },
}

impl fmt::Display for ConversionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.serde {
            SerdeState::Parquet { compression, .. } => write!(f, "parquet ({compression})"),
            SerdeState::Orc { compression, .. } => write!(f, "orc ({compression})"),
        }?;
        write!(f, " against glue table {}.{}", self.database, self.table)
    }
}

/// A Glue table kpipe creates for a converting destination: its columns come from the record
/// type, and it is stored as the format the delivery stream writes, under the destination's
/// bucket and prefix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TableState {
    /// The database.
    pub database: String,
    /// The table.
    pub name: String,
    /// `(name, Hive type)` in field order.
    pub columns: Vec<(String, String)>,
    /// `s3://bucket/prefix/`: where the objects are (the prefix up to its first expression).
    pub location: String,
    /// `parquet` or `orc`.
    pub format: String,
}

impl TableState {
    /// The table's storage: input and output formats and SerDe of Hive's Parquet or ORC
    /// classes, as Athena reads them.
    pub fn storage(&self) -> (&'static str, &'static str, &'static str) {
        match self.format.as_str() {
            "orc" => (
                "org.apache.hadoop.hive.ql.io.orc.OrcInputFormat",
                "org.apache.hadoop.hive.ql.io.orc.OrcOutputFormat",
                "org.apache.hadoop.hive.ql.io.orc.OrcSerde",
            ),
            _ => (
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
            ),
        }
    }
}

/// The Glue tables kpipe creates: one per converting destination with `create: true` (the
/// default). A destination may share a table with another, so each appears once.
///
/// # Errors
/// A record type with a field no Glue column holds, named by its path.
pub fn desired_tables(p: &PipelineSpec) -> Result<Vec<TableState>, crate::schema::SchemaError> {
    let mut tables: Vec<TableState> = Vec::new();
    for s3 in p.destinations {
        let Some(c) = &s3.conversion else { continue };
        if !c.table.create
            || tables
                .iter()
                .any(|t| t.database == c.table.database && t.name == c.table.name)
        {
            continue;
        }
        let schema = c.columns()?;
        // The folder the prefix's literal start names (`readings/` of
        // `readings/site=!{...}/`): the table's objects are all under it.
        let prefix = s3
            .prefix
            .map(|p| {
                let literal = p.raw.split("!{").next().unwrap_or_default();
                literal[..literal.rfind('/').map_or(0, |i| i + 1)].to_owned()
            })
            .unwrap_or_default();
        tables.push(TableState {
            database: c.table.database.to_owned(),
            name: c.table.name.to_owned(),
            columns: schema
                .columns
                .iter()
                .map(|c| (c.name.clone(), c.ty.to_string()))
                .collect(),
            location: format!("s3://{}/{prefix}", s3.bucket),
            format: match c.format {
                crate::spec::ColumnarFormat::Parquet { .. } => "parquet",
                crate::spec::ColumnarFormat::Orc { .. } => "orc",
            }
            .to_owned(),
        });
    }
    Ok(tables)
}

fn conversion_state(c: &crate::spec::ConversionSpec) -> ConversionState {
    use crate::spec::{ColumnarFormat, ParquetWriterVersion};
    let bytes = |b: u64| i32::try_from(b).unwrap_or(i32::MAX);
    ConversionState {
        database: c.table.database.to_owned(),
        table: c.table.name.to_owned(),
        serde: match c.format {
            ColumnarFormat::Parquet {
                compression,
                block_size_bytes,
                page_size_bytes,
                writer_version,
            } => SerdeState::Parquet {
                compression: compression.firehose_name().to_owned(),
                block_size_bytes: bytes(block_size_bytes),
                page_size_bytes: bytes(page_size_bytes),
                writer_version: match writer_version {
                    ParquetWriterVersion::V1 => "V1",
                    ParquetWriterVersion::V2 => "V2",
                }
                .to_owned(),
            },
            ColumnarFormat::Orc {
                compression,
                stripe_size_bytes,
                block_size_bytes,
            } => SerdeState::Orc {
                compression: compression.firehose_name().to_owned(),
                stripe_size_bytes: bytes(stripe_size_bytes),
                block_size_bytes: bytes(block_size_bytes),
            },
        },
    }
}

/// A delivery stream's source record backup: a plain S3 destination (Firehose's
/// S3DestinationConfiguration).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BackupState {
    /// Bucket name.
    pub bucket: String,
    /// Object prefix (`None`: Firehose's default).
    pub prefix: Option<String>,
    /// Error output prefix (`None`: none).
    pub error_prefix: Option<String>,
    /// Buffer size in MiB.
    pub size_mib: u32,
    /// Buffer interval in seconds.
    pub interval_secs: u32,
    /// `UNCOMPRESSED`, `GZIP`, ...
    pub compression: String,
    /// SSE-KMS key ARN for the backup objects.
    pub kms_key: Option<String>,
}

/// The [`DeliveryState::encryption`] value of an AWS-owned key.
pub const AWS_OWNED_CMK: &str = "AWS_OWNED_CMK";

/// A consumer's event source mapping as kpipe wants it or as AWS describes it (the settings
/// `UpdateEventSourceMapping` can change; the starting position only matters at creation).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MappingState {
    /// The consumer's id in the declaration.
    pub consumer: String,
    /// The function's name.
    pub function: String,
    /// The stream's name.
    pub stream: String,
    /// `LATEST` or `TRIM_HORIZON` (used when creating).
    pub starting_position: String,
    /// With `AT_TIMESTAMP`: the instant, in seconds since the Unix epoch.
    pub starting_position_timestamp: Option<i64>,
    /// Records per batch.
    pub batch_size: u32,
    /// Split failing batches.
    pub bisect_on_error: bool,
    /// Retries, -1 for unlimited.
    pub maximum_retries: i64,
    /// Maximum record age in seconds, -1 for unlimited.
    pub maximum_record_age_secs: i64,
    /// Batching window in seconds.
    pub batch_window_secs: u32,
    /// Concurrent batches per shard.
    pub parallelization: u32,
    /// Partial batch responses (`ReportBatchItemFailures`) on.
    pub report_item_failures: bool,
    /// Tumbling window in seconds (`None`: none, AWS's 0).
    pub tumbling_window_secs: Option<u32>,
    /// The on-failure destination's ARN (with `${AWS::...}` references until resolved).
    pub on_failure: Option<String>,
    /// Event filtering patterns, in declaration order.
    pub filters: Vec<String>,
}

/// The streams the spec declares.
pub fn desired_streams(p: &PipelineSpec) -> Vec<StreamState> {
    p.streams
        .iter()
        .map(|s| StreamState {
            name: s.name.to_owned(),
            shards: match s.capacity {
                Capacity::Provisioned { shards } => Some(shards),
                Capacity::OnDemand => None,
            },
            retention_hours: s.retention_hours,
            max_record_size_kib: s.max_record_size_kib,
            kms_key: s.kms_key.map(str::to_owned),
        })
        .collect()
}

/// The delivery streams the spec declares; `lambda_arn` gives the ARN of a transform's
/// function from the transform's id and the function's name (resolved by `apply`, a
/// reference in the template).
pub fn desired_deliveries(
    p: &PipelineSpec,
    lambda_arn: &dyn Fn(&str, &str) -> String,
) -> Vec<DeliveryState> {
    p.delivery_views()
        .into_iter()
        .map(|view| {
            let (d, s3) = (view.spec, view.destination);
            let processors = p
                .processors(d)
                .into_iter()
                .map(|proc| {
                    let mut params: Vec<(String, String)> = proc
                        .params
                        .into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                ParamValue::Text(t) => t,
                                ParamValue::LambdaArn {
                                    transform,
                                    function,
                                } => lambda_arn(transform, function),
                            };
                            (k.to_owned(), v)
                        })
                        .collect();
                    params.sort();
                    (proc.kind.to_owned(), params)
                })
                .collect();
            DeliveryState {
                name: d.name.to_owned(),
                source_stream: view.source.map(|s| s.name.to_owned()),
                bucket: s3.bucket.to_owned(),
                prefix: s3.prefix.map(|p| p.raw.to_owned()),
                error_prefix: s3.error_prefix.map(|p| p.raw.to_owned()),
                size_mib: (s3.buffer.size_bytes / (1024 * 1024)) as u32,
                interval_secs: s3.buffer.interval_secs,
                compression: s3.compression.firehose_name().to_owned(),
                dynamic_partitioning: s3.dynamic_partitioning(),
                processors,
                file_extension: s3.file_extension.map(str::to_owned),
                time_zone: s3.time_zone.map(str::to_owned),
                error_log_group: Some(error_log_group(d.name)),
                kms_key: s3.kms_key.map(str::to_owned),
                encryption: match (d.source, d.encryption) {
                    (SourceSpec::Direct, DeliveryEncryption::AwsOwned) => {
                        Some(AWS_OWNED_CMK.to_owned())
                    }
                    (SourceSpec::Direct, DeliveryEncryption::Kms(arn)) => Some(arn.to_owned()),
                    _ => None,
                },
                backup: view.backup.map(|b| BackupState {
                    bucket: b.bucket.to_owned(),
                    prefix: b.prefix.map(|p| p.raw.to_owned()),
                    error_prefix: b.error_prefix.map(|p| p.raw.to_owned()),
                    size_mib: (b.buffer.size_bytes / (1024 * 1024)) as u32,
                    interval_secs: b.buffer.interval_secs,
                    compression: b.compression.firehose_name().to_owned(),
                    kms_key: b.kms_key.map(str::to_owned),
                }),
                conversion: s3.conversion.as_ref().map(conversion_state),
            }
        })
        .collect()
}

/// The event source mappings the spec declares, one per consumer.
pub fn desired_mappings(p: &PipelineSpec) -> Vec<MappingState> {
    p.consumers
        .iter()
        .map(|c| MappingState {
            consumer: c.id.to_owned(),
            function: c.lambda.name.to_owned(),
            stream: p.stream(c.stream).map_or("", |s| s.name).to_owned(),
            starting_position: c.starting_position.aws_name().to_owned(),
            starting_position_timestamp: match c.starting_position {
                crate::spec::StartingPosition::AtTimestamp(secs) => Some(secs),
                _ => None,
            },
            batch_size: c.batch_size,
            bisect_on_error: c.bisect_on_error,
            maximum_retries: c.maximum_retries.map_or(-1, i64::from),
            maximum_record_age_secs: c
                .maximum_record_age_secs
                .map_or(aws_defaults::MAPPING_MAXIMUM_RECORD_AGE_SECS, i64::from),
            batch_window_secs: c.batch_window_secs,
            parallelization: c.parallelization,
            report_item_failures: true,
            tumbling_window_secs: c.tumbling_window_secs,
            on_failure: c.on_failure.map(crate::spec::OnFailure::arn_template),
            filters: c.filters.iter().map(|f| (*f).to_owned()).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_resolve_and_unknown_ones_stay() {
        let mut values = BTreeMap::new();
        values.insert("AWS::Region".to_owned(), "eu-west-1".to_owned());
        values.insert("AStream.Arn".to_owned(), "arn:x".to_owned());
        let env = Env { values };
        assert_eq!(
            Sub::new("a ${AWS::Region} ${AStream.Arn} ${Other} ${").resolve(&env),
            "a eu-west-1 arn:x ${Other} ${"
        );
        assert_eq!(Sub::new("plain").cfn(), json!("plain"));
        assert_eq!(
            Sub::new("${AWS::Region}").cfn(),
            json!({ "Fn::Sub": "${AWS::Region}" })
        );
    }
}
