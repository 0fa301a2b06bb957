//! The IAM side of the desired state: the roles kpipe creates with their trust and
//! least-privilege statements, the bucket policy, and the log group delivery errors go to.

use super::{Sub, functions, tags};
use crate::cloudformation::logical_id;
use crate::spec::{PipelineSpec, SourceSpec};
use serde_json::{Value, json};

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
        if let Some(c) = &s3.conversion {
            // The conversion reads the table's schema: exactly that table, its database and
            // the catalog ("Controlling access with Amazon Data Firehose", grant Firehose
            // access to AWS Glue for data format conversion:
            // https://docs.aws.amazon.com/firehose/latest/dev/controlling-access.html).
            let scope = crate::arn::Scope::TEMPLATE;
            statements.push(Statement::allow(
                &[
                    "glue:GetTable",
                    "glue:GetTableVersion",
                    "glue:GetTableVersions",
                ],
                vec![
                    Sub::new(scope.glue_catalog()),
                    Sub::new(scope.glue_database(c.table.database)),
                    Sub::new(scope.glue_table(c.table.database, c.table.name)),
                ],
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
