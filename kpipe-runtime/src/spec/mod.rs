//! The static description of a pipeline, as `pipeline!` emits it.
//!
//! Every value is already validated and has AWS's defaults applied; sizes are in bytes,
//! durations in seconds. The spec is plain data (`&'static`), serialisable to JSON with
//! [`PipelineSpec::to_json`], and is what provisioning, the local engine and the CLI read.
//! Stages refer to each other by their identifier in the declaration (`id`).

use serde::Serialize;

/// A whole pipeline: its streams, transforms, destinations and deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PipelineSpec {
    /// The pipeline's type name, e.g. `Telemetry`.
    pub name: &'static str,
    /// The doc comment on the declaration (lines joined with `\n`).
    pub doc: &'static str,
    /// `region: "..."`, when declared.
    pub region: Option<&'static str>,
    /// Tags applied to every resource of the pipeline.
    pub tags: &'static [Tag],
    /// Kinesis data streams.
    pub streams: &'static [StreamSpec],
    /// Transforms (Lambda functions invoked by Firehose).
    pub transforms: &'static [TransformSpec],
    /// S3 destinations.
    pub destinations: &'static [S3Spec],
    /// Firehose delivery streams.
    pub deliveries: &'static [DeliverySpec],
    /// Lambda functions reading a stream through an event source mapping.
    pub consumers: &'static [ConsumerSpec],
}

/// A resource tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// Tag key.
    pub key: &'static str,
    /// Tag value.
    pub value: &'static str,
}

/// A Kinesis data stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StreamSpec {
    /// Identifier in the declaration (`readings`).
    pub id: &'static str,
    /// The stream's AWS name (`sensor-readings`).
    pub name: &'static str,
    /// The record type as written (`Reading`).
    pub record_type: &'static str,
    /// Provisioned shards or on-demand.
    pub capacity: Capacity,
    /// Retention in hours (24..=8760).
    pub retention_hours: u32,
    /// How records get their partition key.
    pub partition_key: PartitionKeySource,
    /// Whether an explicit hash key closure is declared.
    pub explicit_hash_key: bool,
    /// Maximum record size in KiB (1024..=10240).
    pub max_record_size_kib: u32,
    /// Server-side encryption with this KMS key, if any.
    pub kms_key: Option<&'static str>,
    /// Tags on the stream.
    pub tags: &'static [Tag],
}

/// Capacity mode of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capacity {
    /// Provisioned mode with a fixed number of shards.
    Provisioned {
        /// Number of shards (1..=10000).
        shards: u32,
    },
    /// On-demand mode.
    OnDemand,
}

/// Where a stream record's partition key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionKeySource {
    /// A field path of the record, e.g. `sensor_id`.
    Field(&'static str),
    /// A closure over the record.
    Closure,
    /// A random key (UUID) per record.
    Random,
}

/// A transform: the user function Firehose invokes as a Lambda processor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct TransformSpec {
    /// Identifier in the declaration (`enrich`).
    pub id: &'static str,
    /// Input type as written.
    pub input_type: &'static str,
    /// Output type as written.
    pub output_type: &'static str,
    /// The function as written (`crate::enrich`, or `<closure>`).
    pub function: &'static str,
    /// Processor buffering hints.
    pub buffer: Buffer,
    /// Retries of a failed invocation.
    pub retries: u32,
    /// Lambda function settings.
    pub lambda: LambdaSpec,
}

/// A Lambda function that reads a stream through an event source mapping (`consumer`).
/// Limits and defaults: <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html>.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ConsumerSpec {
    /// Identifier in the declaration (`freeze_alerts`).
    pub id: &'static str,
    /// The stream it reads (by id).
    pub stream: &'static str,
    /// The user function as written.
    pub function: &'static str,
    /// Records per invocation at most (1..=10000, default 100).
    pub batch_size: u32,
    /// Where a new mapping starts reading.
    pub starting_position: StartingPosition,
    /// Split a failing batch in two and retry the halves (default false).
    pub bisect_on_error: bool,
    /// Retries of a failing batch; `None` retries until the records expire (AWS's -1).
    pub maximum_retries: Option<u32>,
    /// Records older than this many seconds are discarded instead of consumed; `None` never
    /// (AWS's -1, the default).
    pub maximum_record_age_secs: Option<u32>,
    /// Seconds to gather records before invoking (0..=300, default 0).
    pub batch_window_secs: u32,
    /// Batches processed concurrently per shard (1..=10, default 1).
    pub parallelization: u32,
    /// Tumbling windows of this many seconds (`tumbling_window`): the function is an
    /// [`Aggregate`](crate::Aggregate) of each shard's window; `None`: record by record.
    pub tumbling_window_secs: Option<u32>,
    /// Where a record of each discarded batch is sent (`on_failure`), if anywhere.
    pub on_failure: Option<OnFailure>,
    /// Event filtering patterns (`filter_criteria`): a record reaches the function only when
    /// one of them matches it; none declared, every record does.
    pub filters: &'static [&'static str],
    /// Lambda function settings.
    pub lambda: LambdaSpec,
}

/// An event source mapping's on-failure destination: what Lambda sends an invocation record
/// of each discarded batch to ("Retain discarded batch records for a Kinesis Data Streams
/// event source in Lambda",
/// <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>).
/// Each holds the resource's name, or its ARN when it is in another account or region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// An SQS queue (`sqs("name")`): the batch's metadata only.
    Sqs(&'static str),
    /// An SNS topic (`sns("name")`): the batch's metadata only.
    Sns(&'static str),
    /// An S3 bucket (`s3("bucket")`): the metadata and the whole event.
    S3(&'static str),
}

impl OnFailure {
    /// The destination as declared: a name, or an ARN.
    pub fn target(self) -> &'static str {
        match self {
            OnFailure::Sqs(t) | OnFailure::Sns(t) | OnFailure::S3(t) => t,
        }
    }

    /// The resource's name (the last part of an ARN).
    pub fn name(self) -> &'static str {
        let t = self.target();
        match t.strip_prefix("arn:") {
            Some(rest) => rest.rsplit(':').next().unwrap_or(rest),
            None => t,
        }
    }

    /// The destination's ARN with `${AWS::Partition}`, `${AWS::Region}` and
    /// `${AWS::AccountId}` for what a name leaves out (as the template writes it; `apply`
    /// resolves them); an ARN as declared.
    pub fn arn_template(self) -> String {
        let t = self.target();
        if t.starts_with("arn:") {
            return t.to_owned();
        }
        let scope = crate::arn::Scope::TEMPLATE;
        match self {
            OnFailure::Sqs(_) => scope.queue(t),
            OnFailure::Sns(_) => scope.topic(t),
            OnFailure::S3(_) => scope.bucket(t),
        }
    }
}

/// Where an event source mapping starts reading a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StartingPosition {
    /// Only records put after the mapping is created (`LATEST`).
    Latest,
    /// Every record the stream still retains (`TRIM_HORIZON`).
    TrimHorizon,
    /// Records that arrived at or after this instant, in seconds since the Unix epoch
    /// (`AT_TIMESTAMP` with `StartingPositionTimestamp`).
    AtTimestamp(i64),
}

impl StartingPosition {
    /// AWS's name (`LATEST`, `TRIM_HORIZON`).
    pub fn aws_name(self) -> &'static str {
        match self {
            StartingPosition::Latest => "LATEST",
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::AtTimestamp(_) => "AT_TIMESTAMP",
        }
    }
}

/// Size-or-interval buffering hints: whichever is reached first triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Buffer {
    /// Size hint in bytes.
    pub size_bytes: u64,
    /// Interval hint in seconds.
    pub interval_secs: u32,
}

/// Lambda function settings of a transform or a consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LambdaSpec {
    /// Function name.
    pub name: &'static str,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Timeout in seconds.
    pub timeout_secs: u32,
    /// CPU architecture.
    pub architecture: Architecture,
    /// The bin target of the crate that serves the stage (`lambda_main!`), which `apply`
    /// builds with cargo-lambda: `<stage>_lambda` unless declared (`lambda: { bin: "..." }`).
    pub bin: &'static str,
}

/// Lambda CPU architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// `x86_64` (AWS's default).
    X86_64,
    /// `arm64` (Graviton).
    Arm64,
}

/// An S3 destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct S3Spec {
    /// Identifier in the declaration (`lake`).
    pub id: &'static str,
    /// Record type as written.
    pub record_type: &'static str,
    /// Bucket name.
    pub bucket: &'static str,
    /// Whether kpipe creates (and owns) the bucket.
    pub create_bucket: bool,
    /// Object key prefix; `None` means Firehose's default `yyyy/MM/dd/HH/` (UTC).
    pub prefix: Option<Prefix>,
    /// Prefix for error output; `None` means Firehose's default location.
    pub error_prefix: Option<Prefix>,
    /// Buffering hints.
    pub buffer: Buffer,
    /// Compression of delivered objects.
    pub compression: Compression,
    /// File extension override.
    pub file_extension: Option<&'static str>,
    /// IANA time zone for timestamps in keys; `None` is UTC.
    pub time_zone: Option<&'static str>,
    /// Dynamic partitioning keys (empty: dynamic partitioning off).
    pub partition_keys: &'static [PartitionKeySpec],
    /// Whether a newline is appended after every record.
    pub newline: bool,
    /// SSE-KMS of delivered objects with this key ARN (Firehose's KMSEncryptionConfig, and
    /// the default encryption of a bucket kpipe creates); `None` is SSE-S3, S3's default.
    pub kms_key: Option<&'static str>,
    /// Record format conversion to Parquet or ORC (`format: parquet`), if declared; `None`
    /// writes the records as JSON lines.
    pub conversion: Option<ConversionSpec>,
}

/// Record format conversion of an S3 destination: Firehose's DataFormatConversionConfiguration
/// (OpenX JSON SerDe in, Parquet or ORC SerDe out, the schema from an AWS Glue table).
/// "Convert input data format in Amazon Data Firehose":
/// <https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html>.
///
/// It serialises with the derived `columns` (the timestamps applied) in place of `schema`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConversionSpec {
    /// The columnar format and its serializer's settings.
    pub format: ColumnarFormat,
    /// The Glue table that holds the schema.
    pub table: GlueTableSpec,
    /// The record type's columns, derived from the type (see [`crate::schema`]).
    pub schema: crate::schema::RecordSchema,
}

impl Serialize for ConversionSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut out = s.serialize_struct("ConversionSpec", 3)?;
        out.serialize_field("format", &self.format)?;
        out.serialize_field("table", &self.table)?;
        match self.columns() {
            Ok(schema) => out.serialize_field("columns", &schema.columns)?,
            Err(e) => out.serialize_field("columns", &e.to_string())?,
        }
        out.end()
    }
}

impl ConversionSpec {
    /// The record type's columns: the type traced, with the declared timestamps.
    ///
    /// # Errors
    /// A field that cannot be a Glue column, named by its path.
    pub fn columns(&self) -> Result<crate::schema::Schema, crate::schema::SchemaError> {
        self.schema.derive(self.table.timestamps)
    }
}

/// The output format of a conversion, with the serializer's settings as Firehose takes them
/// (Firehose API, ParquetSerDe: <https://docs.aws.amazon.com/firehose/latest/APIReference/API_ParquetSerDe.html>;
/// OrcSerDe: <https://docs.aws.amazon.com/firehose/latest/APIReference/API_OrcSerDe.html>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnarFormat {
    /// Apache Parquet.
    Parquet {
        /// Compression of data pages (default Snappy).
        compression: ParquetCompression,
        /// HDFS block size in bytes (default 256 MiB, at least 64 MiB).
        block_size_bytes: u64,
        /// Page size in bytes (default 1 MiB, at least 64 KiB).
        page_size_bytes: u64,
        /// Parquet writer version (default V1).
        writer_version: ParquetWriterVersion,
    },
    /// Apache ORC.
    Orc {
        /// Compression of stripes (default Snappy).
        compression: OrcCompression,
        /// Stripe size in bytes (default 64 MiB, at least 8 MiB).
        stripe_size_bytes: u64,
        /// HDFS block size in bytes (default 256 MiB, at least 64 MiB).
        block_size_bytes: u64,
    },
}

impl ColumnarFormat {
    /// The file extension Firehose gives converted objects (`.parquet`, `.orc`).
    pub fn extension(self) -> &'static str {
        match self {
            ColumnarFormat::Parquet { .. } => ".parquet",
            ColumnarFormat::Orc { .. } => ".orc",
        }
    }
}

/// Parquet compression (Firehose's ParquetCompression).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParquetCompression {
    /// `SNAPPY` (the default).
    Snappy,
    /// `GZIP`.
    Gzip,
    /// `UNCOMPRESSED`.
    Uncompressed,
}

impl ParquetCompression {
    /// Firehose's name.
    pub fn firehose_name(self) -> &'static str {
        match self {
            ParquetCompression::Snappy => "SNAPPY",
            ParquetCompression::Gzip => "GZIP",
            ParquetCompression::Uncompressed => "UNCOMPRESSED",
        }
    }
}

/// Parquet writer version (Firehose's ParquetWriterVersion).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParquetWriterVersion {
    /// `V1` (the default).
    V1,
    /// `V2`.
    V2,
}

/// ORC compression (Firehose's OrcCompression).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrcCompression {
    /// `SNAPPY` (the default).
    Snappy,
    /// `ZLIB`.
    Zlib,
    /// `NONE`.
    None,
}

impl OrcCompression {
    /// Firehose's name.
    pub fn firehose_name(self) -> &'static str {
        match self {
            OrcCompression::Snappy => "SNAPPY",
            OrcCompression::Zlib => "ZLIB",
            OrcCompression::None => "NONE",
        }
    }
}

/// The AWS Glue table a conversion reads its schema from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct GlueTableSpec {
    /// The Glue database (default: the pipeline's name in snake case).
    pub database: &'static str,
    /// The table (default: the destination's identifier).
    pub name: &'static str,
    /// Whether kpipe creates (and owns) the database and table from the record type;
    /// `false` uses an existing table as it is.
    pub create: bool,
    /// Field paths (`observed_at`, `meta.sent_at`) whose column is a `timestamp`.
    pub timestamps: &'static [&'static str],
}

impl S3Spec {
    /// True when dynamic partitioning is on.
    pub fn dynamic_partitioning(&self) -> bool {
        !self.partition_keys.is_empty()
    }
}

/// Compression of delivered S3 objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Uncompressed (AWS's default).
    None,
    /// gzip.
    Gzip,
    /// zip.
    Zip,
    /// Snappy (framed).
    Snappy,
    /// Hadoop-compatible Snappy.
    HadoopSnappy,
}

/// A dynamic partitioning key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PartitionKeySpec {
    /// Key name, as used in `!{partitionKeyFrom...:name}`.
    pub name: &'static str,
    /// How the key is computed.
    pub source: KeySource,
}

/// How a dynamic partitioning key is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeySource {
    /// By Firehose, with this jq query (`.site`): `partitionKeyFromQuery`.
    Query(&'static str),
    /// By the transform's Lambda function: `partitionKeyFromLambda`.
    Lambda,
}

/// A parsed S3 prefix expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Prefix {
    /// The prefix as written.
    pub raw: &'static str,
    /// Its parts, in order.
    pub parts: &'static [PrefixPart],
}

/// One part of a prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrefixPart {
    /// Literal text.
    Literal(&'static str),
    /// `!{timestamp:PATTERN}`, tokenised.
    Timestamp(&'static [DatePart]),
    /// `!{firehose:random-string}`.
    RandomString,
    /// `!{firehose:error-output-type}`.
    ErrorOutputType,
    /// `!{partitionKeyFromQuery:key}`.
    KeyFromQuery(&'static str),
    /// `!{partitionKeyFromLambda:key}`.
    KeyFromLambda(&'static str),
}

/// One token of a timestamp pattern (`DateTimeFormatter` subset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePart {
    /// Literal text.
    Literal(&'static str),
    /// A pattern letter repeated `width` times (`yyyy` is `Field { letter: 'y', width: 4 }`).
    Field {
        /// `y`, `u`, `M`, `d`, `D`, `H`, `m`, `s` or `S`.
        letter: char,
        /// Repetitions.
        width: u8,
    },
}

/// A Firehose delivery stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DeliverySpec {
    /// Identifier in the declaration (`sensor_lake`).
    pub id: &'static str,
    /// The delivery stream's AWS name (`sensor-lake`).
    pub name: &'static str,
    /// Where records come from.
    pub source: SourceSpec,
    /// The transform's id, if any.
    pub transform: Option<&'static str>,
    /// The destination's id.
    pub destination: &'static str,
    /// The id of the s3 destination that gets the source records before the transform
    /// (`s3_backup`, Firehose's S3BackupMode Enabled), if any.
    pub backup: Option<&'static str>,
    /// An existing IAM role for Firehose; `None` lets kpipe create one.
    pub role_arn: Option<&'static str>,
    /// Tags on the delivery stream.
    pub tags: &'static [Tag],
    /// Server-side encryption of the delivery stream (Direct PUT only; with a stream as the
    /// source, the stream's encryption applies).
    pub encryption: DeliveryEncryption,
}

/// Server-side encryption of a Direct PUT delivery stream's data at rest (Amazon Data
/// Firehose, Data protection: <https://docs.aws.amazon.com/firehose/latest/dev/encryption.html>).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryEncryption {
    /// Not encrypted by Firehose.
    None,
    /// An AWS-owned key (`AWS_OWNED_CMK`, no charge): kpipe's default for Direct PUT.
    AwsOwned,
    /// A customer managed KMS key (`CUSTOMER_MANAGED_CMK`), by ARN.
    Kms(&'static str),
}

/// Where a delivery's records come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceSpec {
    /// A declared Kinesis stream (by id).
    Stream(&'static str),
    /// Direct PUT into the delivery stream.
    Direct,
}

impl PipelineSpec {
    /// The spec as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("spec: every field serialises to JSON")
    }

    /// The stream with this id.
    pub fn stream(&self, id: &str) -> Option<&'static StreamSpec> {
        self.streams.iter().find(|s| s.id == id)
    }

    /// The transform with this id.
    pub fn transform(&self, id: &str) -> Option<&'static TransformSpec> {
        self.transforms.iter().find(|s| s.id == id)
    }

    /// The destination with this id.
    pub fn destination(&self, id: &str) -> Option<&'static S3Spec> {
        self.destinations.iter().find(|s| s.id == id)
    }

    /// The delivery with this id.
    pub fn delivery(&self, id: &str) -> Option<&'static DeliverySpec> {
        self.deliveries.iter().find(|s| s.id == id)
    }

    /// The consumer with this id.
    pub fn consumer(&self, id: &str) -> Option<&'static ConsumerSpec> {
        self.consumers.iter().find(|s| s.id == id)
    }
}

impl Compression {
    /// Firehose's name of the format (`UNCOMPRESSED`, `GZIP`, `ZIP`, `Snappy`, `HADOOP_SNAPPY`).
    pub fn firehose_name(self) -> &'static str {
        match self {
            Compression::None => "UNCOMPRESSED",
            Compression::Gzip => "GZIP",
            Compression::Zip => "ZIP",
            Compression::Snappy => "Snappy",
            Compression::HadoopSnappy => "HADOOP_SNAPPY",
        }
    }
}

mod resolve;

pub use self::resolve::{DeliveryView, ParamValue, ProcessorSpec, SpecError, processor_buffer_mb};
