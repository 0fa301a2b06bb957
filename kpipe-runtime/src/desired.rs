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

/// A condition on a statement: `{ test: { key: value } }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// `StringEquals`, `Bool`, ...
    pub test: &'static str,
    /// `kms:ViaService`, `aws:SecureTransport`, ...
    pub key: &'static str,
    /// The value.
    pub value: Sub,
}

/// One statement of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    /// `Allow` or `Deny`.
    pub effect: &'static str,
    /// For resource policies (bucket policies): applies to every principal (`"*"`).
    pub any_principal: bool,
    /// The actions.
    pub actions: Vec<&'static str>,
    /// The resources.
    pub resources: Vec<Sub>,
    /// An optional condition.
    pub condition: Option<Condition>,
}

impl Statement {
    fn allow(actions: &[&'static str], resources: Vec<Sub>) -> Self {
        Statement {
            effect: "Allow",
            any_principal: false,
            actions: actions.to_vec(),
            resources,
            condition: None,
        }
    }

    /// The statement as JSON, each reference rendered by `render`.
    pub fn to_json(&self, render: &dyn Fn(&Sub) -> Value) -> Value {
        let mut v = json!({ "Effect": self.effect });
        if self.any_principal {
            v["Principal"] = json!("*");
        }
        v["Action"] = match self.actions.as_slice() {
            [one] => json!(one),
            many => json!(many),
        };
        v["Resource"] = match self.resources.as_slice() {
            [one] => render(one),
            many => Value::Array(many.iter().map(render).collect()),
        };
        if let Some(c) = &self.condition {
            v["Condition"] = json!({ c.test: { c.key: render(&c.value) } });
        }
        v
    }
}

/// A policy document from `statements`.
pub fn document(statements: &[Statement], render: &dyn Fn(&Sub) -> Value) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": statements.iter().map(|s| s.to_json(render)).collect::<Vec<_>>(),
    })
}

/// An IAM role kpipe creates: a delivery stream's, or a function's execution role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Role {
    /// Its logical id in the template (`SensorLakeDeliveryRole`, `EnrichFunctionRole`).
    pub logical_id: String,
    /// Its name when `apply` creates it (the template lets CloudFormation name it).
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The service that assumes it (`firehose.amazonaws.com`, `lambda.amazonaws.com`).
    pub service: &'static str,
    /// Whether assuming it requires `sts:ExternalId` = the account (Firehose's confused-deputy
    /// guard, "Grant Firehose access to an Amazon S3 destination",
    /// <https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html>).
    pub external_id: bool,
    /// The name of its inline policy.
    pub policy_name: &'static str,
    /// The statements of its inline policy.
    pub statements: Vec<Statement>,
    /// Its tags.
    pub tags: Vec<(String, String)>,
}

impl Role {
    /// The trust policy.
    pub fn trust(&self, render: &dyn Fn(&Sub) -> Value) -> Value {
        let mut statement = json!({
            "Effect": "Allow",
            "Principal": { "Service": self.service },
            "Action": "sts:AssumeRole",
        });
        if self.external_id {
            statement["Condition"] = json!({ "StringEquals": { "sts:ExternalId": render(&Sub::new("${AWS::AccountId}")) } });
        }
        json!({ "Version": "2012-10-17", "Statement": [statement] })
    }

    /// The inline policy.
    pub fn policy(&self, render: &dyn Fn(&Sub) -> Value) -> Value {
        document(&self.statements, render)
    }
}

/// IAM role names are at most 64 characters
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html>).
fn role_name(p: &PipelineSpec, what: &str) -> String {
    let mut name = format!("kpipe-{}-{what}", p.name.to_lowercase());
    name.truncate(64);
    name
}

/// What reading stream `stream_id` takes: the Kinesis read actions on it, and decrypting with
/// its key through Kinesis when it is encrypted. A key given as a key ARN is named; an alias
/// or key id cannot be (IAM matches key ARNs), so any key used through Kinesis in the account
/// and region is allowed ("Permissions to use user-generated KMS keys",
/// <https://docs.aws.amazon.com/streams/latest/dev/permissions-user-key-KMS.html>).
pub fn stream_read(p: &PipelineSpec, stream_id: &str) -> Vec<Statement> {
    let mut out = vec![Statement::allow(
        &[
            "kinesis:DescribeStream",
            "kinesis:DescribeStreamSummary",
            "kinesis:GetShardIterator",
            "kinesis:GetRecords",
            "kinesis:ListShards",
        ],
        vec![Sub::new(format!(
            "${{{}.Arn}}",
            logical_id(stream_id, "Stream")
        ))],
    )];
    if let Some(key) = p.stream(stream_id).and_then(|s| s.kms_key) {
        let mut decrypt = if key.starts_with("arn:") && key.contains(":key/") {
            Statement::allow(&["kms:Decrypt"], vec![Sub::new(key)])
        } else {
            Statement::allow(
                &["kms:Decrypt"],
                vec![Sub::new(
                    "arn:${AWS::Partition}:kms:${AWS::Region}:${AWS::AccountId}:key/*",
                )],
            )
        };
        decrypt.condition = Some(Condition {
            test: "StringEquals",
            key: "kms:ViaService",
            value: Sub::new("kinesis.${AWS::Region}.amazonaws.com"),
        });
        out.push(decrypt);
    }
    out
}

/// The roles kpipe creates for pipeline `p`: one per delivery without a declared `role_arn`,
/// one per function.
pub fn roles(p: &PipelineSpec) -> Vec<Role> {
    let mut out = Vec::new();
    for view in p.delivery_views() {
        let (d, s3, backup) = (view.spec, view.destination, view.backup);
        if d.role_arn.is_some() {
            continue;
        }
        // The destination's bucket, and the backup's when there is one.
        let mut buckets = vec![s3.bucket];
        buckets.extend(backup.map(|b| b.bucket).filter(|b| *b != s3.bucket));
        let resources = buckets
            .iter()
            .flat_map(|b| {
                let arn = crate::arn::Scope::TEMPLATE.bucket(b);
                [Sub::new(arn.clone()), Sub::new(format!("{arn}/*"))]
            })
            .collect();
        let mut statements = vec![Statement::allow(
            &[
                "s3:AbortMultipartUpload",
                "s3:GetBucketLocation",
                "s3:GetObject",
                "s3:ListBucket",
                "s3:ListBucketMultipartUploads",
                "s3:PutObject",
            ],
            resources,
        )];
        if let SourceSpec::Stream(id) = d.source {
            statements.extend(stream_read(p, id));
        }
        let mut keys: Vec<&str> = s3.kms_key.into_iter().collect();
        keys.extend(
            backup
                .and_then(|b| b.kms_key)
                .filter(|k| Some(*k) != s3.kms_key),
        );
        if !keys.is_empty() {
            // SSE-KMS objects: Firehose encrypts through S3 with the destination's key
            // (Amazon Data Firehose, Controlling access: https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html).
            let mut encrypt = Statement::allow(
                &["kms:Decrypt", "kms:GenerateDataKey"],
                keys.into_iter().map(Sub::new).collect(),
            );
            encrypt.condition = Some(Condition {
                test: "StringEquals",
                key: "kms:ViaService",
                value: Sub::new("s3.${AWS::Region}.amazonaws.com"),
            });
            statements.push(encrypt);
        }
        if let Some(t) = d.transform {
            statements.push(Statement::allow(
                &["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                vec![Sub::new(format!("${{{}.Arn}}", logical_id(t, "Function")))],
            ));
        }
        statements.push(Statement::allow(
            &["logs:PutLogEvents"],
            vec![Sub::new(
                crate::arn::Scope::TEMPLATE.log_streams(&error_log_group(d.name)),
            )],
        ));
        out.push(Role {
            logical_id: logical_id(d.id, "DeliveryRole"),
            name: role_name(p, d.name),
            description: format!("kpipe: Firehose delivery stream {}", d.name),
            service: "firehose.amazonaws.com",
            external_id: true,
            policy_name: "delivery",
            statements,
            tags: tags(p, d.tags),
        });
    }
    for (id, lambda) in functions(p) {
        let mut statements = vec![
            Statement::allow(
                &["logs:CreateLogGroup"],
                vec![Sub::new(
                    "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:*",
                )],
            ),
            Statement::allow(
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                vec![Sub::new(format!(
                    "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:/aws/lambda/{}:*",
                    lambda.name
                ))],
            ),
        ];
        if let Some(c) = p.consumer(id) {
            statements.extend(stream_read(p, c.stream));
            if let Some(dest) = c.on_failure {
                statements.push(on_failure_write(dest));
            }
        }
        out.push(Role {
            logical_id: logical_id(id, "FunctionRole"),
            name: role_name(p, &format!("{id}-function")),
            description: format!("kpipe: execution role of function {}", lambda.name),
            service: "lambda.amazonaws.com",
            external_id: false,
            policy_name: "function",
            statements,
            tags: tags(p, &[]),
        });
    }
    out
}

/// What a function's role needs to send invocation records to its on-failure destination:
/// `sqs:SendMessage`, `sns:Publish`, or `s3:PutObject` and `s3:ListBucket` ("Retain discarded
/// batch records for a Kinesis Data Streams event source in Lambda",
/// <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>).
fn on_failure_write(dest: crate::spec::OnFailure) -> Statement {
    let arn = dest.arn_template();
    match dest {
        crate::spec::OnFailure::Sqs(_) => {
            Statement::allow(&["sqs:SendMessage"], vec![Sub::new(arn)])
        }
        crate::spec::OnFailure::Sns(_) => Statement::allow(&["sns:Publish"], vec![Sub::new(arn)]),
        crate::spec::OnFailure::S3(_) => Statement::allow(
            &["s3:ListBucket", "s3:PutObject"],
            vec![Sub::new(arn.clone()), Sub::new(format!("{arn}/*"))],
        ),
    }
}

/// The CloudWatch Logs group a delivery stream logs its delivery errors to, as the console
/// names it ("Monitor Amazon Data Firehose using CloudWatch Logs",
/// <https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-logs.html>).
pub fn error_log_group(delivery: &str) -> String {
    format!("/aws/kinesisfirehose/{delivery}")
}

/// The log stream within [`error_log_group`] for S3 delivery errors.
pub const ERROR_LOG_STREAM: &str = "DestinationDelivery";

/// The policy of a bucket kpipe owns: requests that do not use TLS are denied ("Security best
/// practices for Amazon S3",
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/security-best-practices.html>).
pub fn bucket_policy(bucket: &str) -> Vec<Statement> {
    let arn = crate::arn::Scope::TEMPLATE.bucket(bucket);
    vec![Statement {
        effect: "Deny",
        any_principal: true,
        actions: vec!["s3:*"],
        resources: vec![Sub::new(arn.clone()), Sub::new(format!("{arn}/*"))],
        condition: Some(Condition {
            test: "Bool",
            key: "aws:SecureTransport",
            value: Sub::new("false"),
        }),
    }]
}

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
