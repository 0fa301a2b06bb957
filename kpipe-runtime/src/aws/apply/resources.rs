//! Buckets kpipe creates, and the tags every resource carries.

use crate::aws::{ApplyReport, Aws, ProvisionError, call_err};
use crate::desired::Env;
use crate::pipeline::Pipeline;
use aws_sdk_firehose::types as fh;

impl<P: Pipeline> Aws<P> {
    /// Runs `Op::CreateBucket` (see `run_update_shard_count` on why each op has a method).
    pub(super) async fn run_create_bucket(
        &self,
        bucket: &str,
        env: &Env,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let mut req = self.s3.create_bucket().bucket(bucket);
        if self.region != "us-east-1" {
            req = req.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        self.region.as_str(),
                    ))
                    .build(),
            );
        }
        req.send()
            .await
            .map_err(|e| call_err(&format!("s3 bucket {bucket}"), "create", e))?;
        let block = aws_sdk_s3::types::PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .block_public_policy(true)
            .ignore_public_acls(true)
            .restrict_public_buckets(true)
            .build();
        self.s3
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(block)
            .send()
            .await
            .map_err(|e| call_err(&format!("s3 bucket {bucket}"), "block public access on", e))?;
        // SSE-KMS by default with the destination's key and an S3 Bucket Key; without
        // one, S3's own default (SSE-S3) applies, as in the template.
        let kms_key = self
            .spec()
            .destinations
            .iter()
            .find(|s| s.bucket == bucket)
            .and_then(|s| s.kms_key);
        if let Some(key) = kms_key {
            let s3t = aws_sdk_s3::types::ServerSideEncryptionByDefault::builder()
                .sse_algorithm(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .kms_master_key_id(key)
                .build()
                .map_err(|e| {
                    call_err(&format!("s3 bucket {bucket}"), "build the encryption of", e)
                })?;
            let rule = aws_sdk_s3::types::ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(s3t)
                .bucket_key_enabled(true)
                .build();
            let config = aws_sdk_s3::types::ServerSideEncryptionConfiguration::builder()
                .rules(rule)
                .build()
                .map_err(|e| {
                    call_err(&format!("s3 bucket {bucket}"), "build the encryption of", e)
                })?;
            self.s3
                .put_bucket_encryption()
                .bucket(bucket)
                .server_side_encryption_configuration(config)
                .send()
                .await
                .map_err(|e| {
                    call_err(&format!("s3 bucket {bucket}"), "set the encryption of", e)
                })?;
        }
        if self.plain_http {
            report.actions.push(format!(
                "s3 bucket {bucket}: no policy requiring TLS (the endpoint is plain HTTP)"
            ));
        } else {
            let render = |s: &crate::desired::Sub| serde_json::Value::String(s.resolve(env));
            let policy = crate::desired::document(&crate::desired::bucket_policy(bucket), &render);
            self.s3
                .put_bucket_policy()
                .bucket(bucket)
                .policy(policy.to_string())
                .send()
                .await
                .map_err(|e| call_err(&format!("s3 bucket {bucket}"), "write the policy of", e))?;
        }
        let tags: Vec<aws_sdk_s3::types::Tag> = crate::desired::tags(self.spec(), &[])
            .into_iter()
            .filter_map(|(k, v)| {
                aws_sdk_s3::types::Tag::builder()
                    .key(k)
                    .value(v)
                    .build()
                    .ok()
            })
            .collect();
        let tagging = aws_sdk_s3::types::Tagging::builder()
            .set_tag_set(Some(tags))
            .build()
            .map_err(|e| call_err(&format!("s3 bucket {bucket}"), "build the tags of", e))?;
        self.s3
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| call_err(&format!("s3 bucket {bucket}"), "tag", e))?;
        report.actions.push(format!("created s3 bucket {bucket}"));
        Ok(())
    }

    /// Writes the declared tags on the streams, delivery streams and functions kpipe created
    /// for the pipeline (those carrying its `kpipe:pipeline` tag) where they differ, so a tag
    /// added to the declaration reaches resources made before. Resources kpipe did not create
    /// are left as they are.
    pub(super) async fn sync_tags(&self, report: &mut ApplyReport) -> Result<(), ProvisionError> {
        let spec = self.spec();
        let missing = |want: Vec<(String, String)>,
                       have: &std::collections::HashMap<String, String>| {
            let owned = have
                .get(crate::desired::OWNER_TAG)
                .is_some_and(|v| v == spec.name);
            let missing: Vec<(String, String)> = want
                .into_iter()
                .filter(|(k, v)| have.get(k) != Some(v))
                .collect();
            if owned { missing } else { Vec::new() }
        };
        let describe = |tags: &[(String, String)]| {
            tags.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        for s in spec.streams {
            let add = missing(
                crate::desired::tags(spec, s.tags),
                &self.stream_tags(s.name).await?,
            );
            if !add.is_empty() {
                self.kinesis
                    .add_tags_to_stream()
                    .stream_name(s.name)
                    .set_tags(Some(add.iter().cloned().collect()))
                    .send()
                    .await
                    .map_err(|e| call_err(&format!("kinesis stream {}", s.name), "tag", e))?;
                report.actions.push(format!(
                    "tagged kinesis stream {}: {}",
                    s.name,
                    describe(&add)
                ));
            }
        }
        for d in spec.deliveries {
            let add = missing(
                crate::desired::tags(spec, d.tags),
                &self.delivery_tags(d.name).await?,
            );
            if !add.is_empty() {
                let tags: Vec<fh::Tag> = add
                    .iter()
                    .filter_map(|(k, v)| fh::Tag::builder().key(k).value(v).build().ok())
                    .collect();
                self.firehose
                    .tag_delivery_stream()
                    .delivery_stream_name(d.name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| call_err(&format!("delivery stream {}", d.name), "tag", e))?;
                report.actions.push(format!(
                    "tagged firehose delivery stream {}: {}",
                    d.name,
                    describe(&add)
                ));
            }
        }
        for (_, lambda) in crate::desired::functions(spec) {
            let Ok(out) = self
                .lambda
                .get_function()
                .function_name(lambda.name)
                .send()
                .await
            else {
                continue;
            };
            let (Some(arn), have) = (
                out.configuration()
                    .and_then(|c| c.function_arn())
                    .map(str::to_owned),
                out.tags().cloned().unwrap_or_default(),
            ) else {
                continue;
            };
            let add = missing(crate::desired::tags(spec, &[]), &have);
            if !add.is_empty() {
                self.lambda
                    .tag_resource()
                    .resource(arn)
                    .set_tags(Some(add.iter().cloned().collect()))
                    .send()
                    .await
                    .map_err(|e| call_err(&format!("lambda function {}", lambda.name), "tag", e))?;
                report.actions.push(format!(
                    "tagged lambda function {}: {}",
                    lambda.name,
                    describe(&add)
                ));
            }
        }
        Ok(())
    }
}
