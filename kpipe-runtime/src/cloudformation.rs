//! A CloudFormation template of a pipeline: the streams, the S3 buckets kpipe owns, the
//! Firehose delivery streams, each transform's and consumer's Lambda function, each consumer's
//! event source mapping, and least-privilege IAM roles derived from the declared edges
//! (Firehose reads exactly its stream, writes exactly its bucket, invokes exactly its
//! function; a consumer's function reads exactly its stream).
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
//! let template = kpipe_runtime::cloudformation::template(Clicks::spec());
//! assert_eq!(template["Resources"]["EventsStream"]["Type"], "AWS::Kinesis::Stream");
//! ```

use crate::desired;
use crate::spec::{
    Architecture, ConsumerSpec, DeliverySpec, LambdaSpec, PipelineSpec, S3Spec, SourceSpec,
    StreamSpec, Tag,
};
use serde_json::{Value, json};

/// The CloudFormation logical id of a stage: `readings` + `Stream` -> `ReadingsStream`.
pub fn logical_id(id: &str, kind: &str) -> String {
    let mut out = String::new();
    let mut upper = true;
    for c in id.chars() {
        if c == '_' || c == '-' || c == '.' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out.push_str(kind);
    out
}

fn tags(pipeline: &PipelineSpec, own: &[Tag]) -> Value {
    tag_list(&desired::tags(pipeline, own))
}

fn tag_list(tags: &[(String, String)]) -> Value {
    tags.iter()
        .map(|(k, v)| json!({ "Key": k, "Value": v }))
        .collect()
}

/// A stream, from the same desired state `plan` compares with.
fn stream(p: &PipelineSpec, s: &StreamSpec, state: &desired::StreamState) -> Value {
    let mut props = json!({
        "Name": state.name,
        "RetentionPeriodHours": state.retention_hours,
        "Tags": tags(p, s.tags),
    });
    match state.shards {
        Some(shards) => {
            props["ShardCount"] = json!(shards);
            props["StreamModeDetails"] = json!({ "StreamMode": "PROVISIONED" });
        }
        None => props["StreamModeDetails"] = json!({ "StreamMode": "ON_DEMAND" }),
    }
    // Kinesis Data Streams, Handle large records:
    // https://docs.aws.amazon.com/streams/latest/dev/large-records.html
    if state.max_record_size_kib != desired::aws_defaults::MAX_RECORD_SIZE_KIB {
        props["MaxRecordSizeInKiB"] = json!(state.max_record_size_kib);
    }
    if let Some(key) = &state.kms_key {
        props["StreamEncryption"] = json!({ "EncryptionType": "KMS", "KeyId": key });
    }
    json!({ "Type": "AWS::Kinesis::Stream", "Properties": props })
}

fn bucket(p: &PipelineSpec, s: &S3Spec) -> Value {
    json!({
        "Type": "AWS::S3::Bucket",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "BucketName": s.bucket,
            "BucketEncryption": bucket_encryption(s),
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": true,
                "BlockPublicPolicy": true,
                "IgnorePublicAcls": true,
                "RestrictPublicBuckets": true
            },
            "OwnershipControls": { "Rules": [ { "ObjectOwnership": "BucketOwnerEnforced" } ] },
            "Tags": tags(p, &[]),
        }
    })
}

/// SSE-S3, or SSE-KMS with the destination's key and an S3 Bucket Key (fewer KMS requests:
/// "Reducing the cost of SSE-KMS with Amazon S3 Bucket Keys",
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucket-key.html>).
fn bucket_encryption(s: &S3Spec) -> Value {
    let rule = match s.kms_key {
        Some(key) => json!({
            "ServerSideEncryptionByDefault": { "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key },
            "BucketKeyEnabled": true
        }),
        None => json!({ "ServerSideEncryptionByDefault": { "SSEAlgorithm": "AES256" } }),
    };
    json!({ "ServerSideEncryptionConfiguration": [rule] })
}

/// A function whose code is in S3 at the `<Id>CodeS3Bucket` / `<Id>CodeS3Key` parameters.
fn function(p: &PipelineSpec, id: &str, l: &LambdaSpec, description: String) -> Value {
    let code = logical_id(id, "Code");
    json!({
        "Type": "AWS::Lambda::Function",
        "Properties": {
            "FunctionName": l.name,
            "Description": description,
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Architectures": [match l.architecture { Architecture::X86_64 => "x86_64", Architecture::Arm64 => "arm64" }],
            "MemorySize": l.memory_mib,
            "Timeout": l.timeout_secs,
            "Role": { "Fn::GetAtt": [logical_id(id, "FunctionRole"), "Arn"] },
            "Code": {
                "S3Bucket": { "Ref": format!("{code}S3Bucket") },
                "S3Key": { "Ref": format!("{code}S3Key") }
            },
            "Tags": tags(p, &[]),
        }
    })
}

/// A role of [`desired::roles`], its references as `Fn::Sub`.
fn role(r: &desired::Role) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": r.description,
            "AssumeRolePolicyDocument": r.trust(&desired::Sub::cfn),
            "Policies": [{ "PolicyName": r.policy_name, "PolicyDocument": r.policy(&desired::Sub::cfn) }],
            "Tags": tag_list(&r.tags),
        }
    })
}

/// A consumer's event source mapping: the stream to the function, with partial batch
/// responses on (the handler reports `batchItemFailures`).
fn event_source_mapping(c: &ConsumerSpec, state: &desired::MappingState) -> Value {
    let mut props = json!({
        "Enabled": true,
        "EventSourceArn": { "Fn::GetAtt": [logical_id(c.stream, "Stream"), "Arn"] },
        "FunctionName": { "Ref": logical_id(c.id, "Function") },
        "StartingPosition": state.starting_position,
        "BatchSize": state.batch_size,
        "BisectBatchOnFunctionError": state.bisect_on_error,
        "MaximumRetryAttempts": state.maximum_retries,
        "MaximumRecordAgeInSeconds": state.maximum_record_age_secs,
        "MaximumBatchingWindowInSeconds": state.batch_window_secs,
        "ParallelizationFactor": state.parallelization,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
    });
    if let Some(secs) = state.starting_position_timestamp {
        props["StartingPositionTimestamp"] = json!(secs);
    }
    if let Some(secs) = state.tumbling_window_secs {
        props["TumblingWindowInSeconds"] = json!(secs);
    }
    if let Some(arn) = &state.on_failure {
        props["DestinationConfig"] =
            json!({ "OnFailure": { "Destination": desired::Sub::new(arn.as_str()).cfn() } });
    }
    if !state.filters.is_empty() {
        let filters: Vec<Value> = state
            .filters
            .iter()
            .map(|f| json!({ "Pattern": f }))
            .collect();
        props["FilterCriteria"] = json!({ "Filters": filters });
    }
    json!({ "Type": "AWS::Lambda::EventSourceMapping", "Properties": props })
}

/// A delivery stream, from the same desired state `plan` compares with (its references, such
/// as the transform's function ARN, written as `Fn::Sub`).
fn delivery(p: &PipelineSpec, d: &'static DeliverySpec, state: &desired::DeliveryState) -> Value {
    let role: Value = match d.role_arn {
        Some(arn) => json!(arn),
        None => json!({ "Fn::GetAtt": [logical_id(d.id, "DeliveryRole"), "Arn"] }),
    };
    let processors: Vec<Value> = state
        .processors
        .iter()
        .map(|(kind, params)| {
            let params: Vec<Value> = params
                .iter()
                .map(|(name, value)| {
                    json!({ "ParameterName": name, "ParameterValue": desired::Sub::new(value.as_str()).cfn() })
                })
                .collect();
            json!({ "Type": kind, "Parameters": params })
        })
        .collect();
    let mut dest = json!({
        "BucketARN": desired::Sub::new(crate::arn::Scope::TEMPLATE.bucket(&state.bucket)).cfn(),
        "RoleARN": role.clone(),
        "BufferingHints": {
            "SizeInMBs": state.size_mib,
            "IntervalInSeconds": state.interval_secs
        },
        "CompressionFormat": state.compression,
    });
    if let Some(prefix) = &state.prefix {
        dest["Prefix"] = json!(prefix);
    }
    if let Some(prefix) = &state.error_prefix {
        dest["ErrorOutputPrefix"] = json!(prefix);
    }
    if let Some(ext) = &state.file_extension {
        dest["FileExtension"] = json!(ext);
    }
    if let Some(tz) = &state.time_zone {
        dest["CustomTimeZone"] = json!(tz);
    }
    if state.dynamic_partitioning {
        dest["DynamicPartitioningConfiguration"] = json!({ "Enabled": true });
    }
    if !processors.is_empty() {
        dest["ProcessingConfiguration"] = json!({ "Enabled": true, "Processors": processors });
    }
    if let Some(key) = &state.kms_key {
        dest["EncryptionConfiguration"] = json!({ "KMSEncryptionConfig": { "AWSKMSKeyARN": key } });
    }
    if state.error_log_group.is_some() {
        dest["CloudWatchLoggingOptions"] = json!({
            "Enabled": true,
            "LogGroupName": { "Ref": logical_id(d.id, "ErrorLogGroup") },
            "LogStreamName": { "Ref": logical_id(d.id, "ErrorLogStream") },
        });
    }
    if let Some(b) = &state.backup {
        dest["S3BackupMode"] = json!("Enabled");
        let mut backup = json!({
            "BucketARN": desired::Sub::new(crate::arn::Scope::TEMPLATE.bucket(&b.bucket)).cfn(),
            "RoleARN": role.clone(),
            "BufferingHints": { "SizeInMBs": b.size_mib, "IntervalInSeconds": b.interval_secs },
            "CompressionFormat": b.compression,
        });
        if let Some(prefix) = &b.prefix {
            backup["Prefix"] = json!(prefix);
        }
        if let Some(prefix) = &b.error_prefix {
            backup["ErrorOutputPrefix"] = json!(prefix);
        }
        if let Some(key) = &b.kms_key {
            backup["EncryptionConfiguration"] =
                json!({ "KMSEncryptionConfig": { "AWSKMSKeyARN": key } });
        }
        dest["S3BackupConfiguration"] = backup;
    }
    if let Some(c) = &state.conversion {
        dest["DataFormatConversionConfiguration"] = conversion(c, &role);
    }
    let mut props = json!({
        "DeliveryStreamName": state.name,
        "ExtendedS3DestinationConfiguration": dest,
        "Tags": tags(p, d.tags),
    });
    match d.source {
        SourceSpec::Stream(id) => {
            props["DeliveryStreamType"] = json!("KinesisStreamAsSource");
            props["KinesisStreamSourceConfiguration"] = json!({
                "KinesisStreamARN": { "Fn::GetAtt": [logical_id(id, "Stream"), "Arn"] },
                "RoleARN": role,
            });
        }
        SourceSpec::Direct => props["DeliveryStreamType"] = json!("DirectPut"),
    }
    // Amazon Data Firehose, Data protection: https://docs.aws.amazon.com/firehose/latest/dev/encryption.html
    match state.encryption.as_deref() {
        Some(desired::AWS_OWNED_CMK) => {
            props["DeliveryStreamEncryptionConfigurationInput"] =
                json!({ "KeyType": desired::AWS_OWNED_CMK });
        }
        Some(arn) => {
            props["DeliveryStreamEncryptionConfigurationInput"] =
                json!({ "KeyType": "CUSTOMER_MANAGED_CMK", "KeyARN": arn });
        }
        None => {}
    }
    let mut resource =
        json!({ "Type": "AWS::KinesisFirehose::DeliveryStream", "Properties": props });
    let mut depends = Vec::new();
    if let Ok(v) = p.view(d) {
        if v.destination.create_bucket {
            depends.push(logical_id(d.destination, "Bucket"));
        }
        if let Some(c) = v.destination.conversion.filter(|c| c.table.create) {
            depends.push(table_id(c.table.database, c.table.name));
        }
    }
    if !depends.is_empty() {
        resource["DependsOn"] = json!(depends);
    }
    resource
}

/// A delivery stream's DataFormatConversionConfiguration: OpenX JSON SerDe in, the Parquet or
/// ORC SerDe out, the schema from the Glue table's latest version (Firehose API,
/// DataFormatConversionConfiguration:
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_DataFormatConversionConfiguration.html>).
fn conversion(c: &desired::ConversionState, role: &Value) -> Value {
    let serializer = match &c.serde {
        desired::SerdeState::Parquet {
            compression,
            block_size_bytes,
            page_size_bytes,
            writer_version,
        } => json!({ "ParquetSerDe": {
            "Compression": compression,
            "BlockSizeBytes": block_size_bytes,
            "PageSizeBytes": page_size_bytes,
            "WriterVersion": writer_version,
        }}),
        desired::SerdeState::Orc {
            compression,
            stripe_size_bytes,
            block_size_bytes,
        } => json!({ "OrcSerDe": {
            "Compression": compression,
            "StripeSizeBytes": stripe_size_bytes,
            "BlockSizeBytes": block_size_bytes,
        }}),
    };
    json!({
        "Enabled": true,
        "InputFormatConfiguration": { "Deserializer": { "OpenXJsonSerDe": {} } },
        "OutputFormatConfiguration": { "Serializer": serializer },
        "SchemaConfiguration": {
            "CatalogId": { "Ref": "AWS::AccountId" },
            "DatabaseName": c.database,
            "TableName": c.table,
            "Region": { "Ref": "AWS::Region" },
            "RoleARN": role,
            "VersionId": "LATEST",
        },
    })
}

/// The logical id of a Glue table kpipe creates.
fn table_id(database: &str, table: &str) -> String {
    logical_id(&format!("{database}_{table}"), "GlueTable")
}

/// The Glue database and table resources of the tables kpipe creates (`AWS::Glue::Database`,
/// `AWS::Glue::Table`), with the table's columns from the record type. The table carries the
/// pipeline's owner tag as a table parameter (Glue tables take no CloudFormation tags).
fn glue(p: &PipelineSpec, resources: &mut serde_json::Map<String, Value>) {
    // `check()` has derived every schema already; a spec that was not checked gets no table.
    let tables = desired::desired_tables(p).unwrap_or_default();
    for t in &tables {
        let db = logical_id(&t.database, "GlueDatabase");
        resources.entry(db.clone()).or_insert_with(|| {
            json!({
                "Type": "AWS::Glue::Database",
                "Properties": {
                    "CatalogId": { "Ref": "AWS::AccountId" },
                    "DatabaseInput": {
                        "Name": t.database,
                        "Description": format!("kpipe: tables of pipeline {}", p.name),
                    },
                }
            })
        });
        let (input, output, serde) = t.storage();
        let columns: Vec<Value> = t
            .columns
            .iter()
            .map(|(name, ty)| json!({ "Name": name, "Type": ty }))
            .collect();
        resources.insert(
            table_id(&t.database, &t.name),
            json!({
                "Type": "AWS::Glue::Table",
                "Properties": {
                    "CatalogId": { "Ref": "AWS::AccountId" },
                    "DatabaseName": { "Ref": db },
                    "TableInput": {
                        "Name": t.name,
                        "Description": format!("kpipe: {} records of pipeline {}", t.format, p.name),
                        "TableType": "EXTERNAL_TABLE",
                        "Parameters": { "classification": t.format, desired::OWNER_TAG: p.name },
                        "StorageDescriptor": {
                            "Columns": columns,
                            "Location": t.location,
                            "InputFormat": input,
                            "OutputFormat": output,
                            "SerdeInfo": { "SerializationLibrary": serde },
                        },
                    },
                }
            }),
        );
    }
}

/// The whole template, as JSON.
pub fn template(p: &PipelineSpec) -> Value {
    template_with_code(p, &std::collections::HashMap::new())
}

/// The template with the code of each function given: `code` maps a transform's or
/// consumer's id to the S3 bucket and key of its zip, which become the defaults of its
/// `<Stage>CodeS3Bucket` / `<Stage>CodeS3Key` parameters (`synth --assets`), so the template
/// deploys as it is once the zips are uploaded.
pub fn template_with_code(
    p: &PipelineSpec,
    code: &std::collections::HashMap<String, (String, String)>,
) -> Value {
    let mut resources = serde_json::Map::new();
    let mut parameters = serde_json::Map::new();
    let mut outputs = serde_json::Map::new();
    for (s, state) in p.streams.iter().zip(desired::desired_streams(p)) {
        let id = logical_id(s.id, "Stream");
        resources.insert(id.clone(), stream(p, s, &state));
        outputs.insert(
            format!("{id}Arn"),
            json!({ "Description": format!("Kinesis stream {}", s.name), "Value": { "Fn::GetAtt": [id, "Arn"] } }),
        );
    }
    let mut buckets = std::collections::BTreeSet::new();
    for s in p.destinations {
        if s.create_bucket && buckets.insert(s.bucket) {
            let id = logical_id(s.id, "Bucket");
            resources.insert(id.clone(), bucket(p, s));
            resources.insert(
                logical_id(s.id, "BucketPolicy"),
                json!({
                    "Type": "AWS::S3::BucketPolicy",
                    "Properties": {
                        "Bucket": { "Ref": id },
                        "PolicyDocument": desired::document(&desired::bucket_policy(s.bucket), &desired::Sub::cfn),
                    }
                }),
            );
        }
    }
    let mut code_parameters = |id: &str, what: &str| {
        let name = logical_id(id, "Code");
        let mut bucket = json!({ "Type": "String", "Description": format!("S3 bucket holding the Lambda package of {what} `{id}`") });
        let mut key = json!({ "Type": "String", "Description": format!("S3 key of the Lambda package (a zip with `bootstrap`) of {what} `{id}`") });
        if let Some((b, k)) = code.get(id) {
            bucket["Default"] = json!(b);
            key["Default"] = json!(k);
        }
        parameters.insert(format!("{name}S3Bucket"), bucket);
        parameters.insert(format!("{name}S3Key"), key);
    };
    for r in desired::roles(p) {
        resources.insert(r.logical_id.clone(), role(&r));
    }
    for t in p.transforms {
        code_parameters(t.id, "transform");
        let description = desired::function_description(p, t.id);
        resources.insert(
            logical_id(t.id, "Function"),
            function(p, t.id, &t.lambda, description),
        );
    }
    let mappings = desired::desired_mappings(p);
    for (i, c) in p.consumers.iter().enumerate() {
        code_parameters(c.id, "consumer");
        let description = desired::function_description(p, c.id);
        resources.insert(
            logical_id(c.id, "Function"),
            function(p, c.id, &c.lambda, description),
        );
        resources.insert(
            logical_id(c.id, "EventSourceMapping"),
            event_source_mapping(c, &mappings[i]),
        );
    }
    glue(p, &mut resources);
    // The transform's function as a reference: `Fn::Sub` of its ARN (and so a dependency).
    let deliveries =
        desired::desired_deliveries(p, &|t, _| format!("${{{}.Arn}}", logical_id(t, "Function")));
    for (i, d) in p.deliveries.iter().enumerate() {
        // Where Firehose logs delivery errors: a group and a stream of its own.
        let group = logical_id(d.id, "ErrorLogGroup");
        resources.insert(
            group.clone(),
            json!({
                "Type": "AWS::Logs::LogGroup",
                "Properties": { "LogGroupName": desired::error_log_group(d.name), "Tags": tags(p, d.tags) }
            }),
        );
        resources.insert(
            logical_id(d.id, "ErrorLogStream"),
            json!({
                "Type": "AWS::Logs::LogStream",
                "Properties": { "LogGroupName": { "Ref": group }, "LogStreamName": desired::ERROR_LOG_STREAM }
            }),
        );
        let id = logical_id(d.id, "DeliveryStream");
        resources.insert(id.clone(), delivery(p, d, &deliveries[i]));
        outputs.insert(
            format!("{id}Name"),
            json!({ "Description": format!("Firehose delivery stream {}", d.name), "Value": { "Ref": id } }),
        );
    }
    let mut t = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": if p.doc.is_empty() { format!("kpipe pipeline {}", p.name) } else { format!("kpipe pipeline {}: {}", p.name, p.doc.lines().next().unwrap_or_default()) },
        "Resources": resources,
    });
    if !parameters.is_empty() {
        t["Parameters"] = Value::Object(parameters);
    }
    if !outputs.is_empty() {
        t["Outputs"] = Value::Object(outputs);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_are_alphanumeric() {
        assert_eq!(
            logical_id("sensor_lake", "DeliveryStream"),
            "SensorLakeDeliveryStream"
        );
        assert_eq!(logical_id("readings", "Stream"), "ReadingsStream");
    }

    #[test]
    fn processor_sizes_are_decimal_megabytes() {
        use crate::spec::processor_buffer_mb as mb;
        assert_eq!(mb(1024 * 1024), "1");
        assert_eq!(mb(209_715), "0.2");
        assert_eq!(mb(3 * 1024 * 1024), "3");
    }
}
