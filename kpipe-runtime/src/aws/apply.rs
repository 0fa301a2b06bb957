//! `plan` and `apply`: the desired state against what Describe calls return, then the
//! operations that close the gap, in dependency order (buckets and roles, functions, streams,
//! delivery streams, mappings).

use super::plan::{self, DeliveryState, Op, Plan};
use super::wait::Wait;
use super::{ApplyReport, Aws, ProvisionError, call_err};
use crate::desired::Env;
use crate::pipeline::Pipeline;
use aws_sdk_firehose::types as fh;
use aws_sdk_kinesis::types as ks;

impl<P: Pipeline> Aws<P> {
    /// Reads the current state and returns what `apply` would do. Functions' code is built
    /// (or read) first, to tell changed code from unchanged by its hash.
    ///
    /// # Errors
    /// When a Describe call fails (other than "not found"), or a function's code cannot be
    /// built or read.
    pub async fn plan(&self) -> Result<Plan, ProvisionError> {
        let env = self.env().await?;
        // Boxed: these futures are large, and debug builds put them on the caller's stack.
        Box::pin(self.plan_in(&env)).await
    }

    async fn plan_in(&self, env: &Env) -> Result<Plan, ProvisionError> {
        let spec = self.spec();
        let mut ops = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for s in spec.destinations {
            if s.create_bucket && seen.insert(s.bucket) && !self.bucket_exists(s.bucket).await? {
                ops.push(Op::CreateBucket {
                    bucket: s.bucket.to_owned(),
                });
            }
        }
        for r in crate::desired::roles(spec) {
            ops.push(Op::EnsureRole {
                role: r.name,
                purpose: r.description.trim_start_matches("kpipe: ").to_owned(),
            });
        }
        for desired in Box::pin(self.desired_functions(env)).await? {
            let current = Box::pin(self.current_function(&desired)).await?;
            ops.extend(plan::diff_function(
                &desired,
                current.as_ref().map(|c| &c.0),
            ));
        }
        for desired in plan::desired_streams(spec) {
            let current = self.current_stream(&desired.name).await?;
            ops.extend(plan::diff_stream(
                &desired,
                current.as_ref().map(|c| &c.state),
            ));
        }
        let scope = crate::arn::Scope {
            partition: env.value("AWS::Partition").unwrap_or("aws"),
            region: env.value("AWS::Region").unwrap_or_default(),
            account: env.value("AWS::AccountId").unwrap_or_default(),
        };
        let lambda_arn = |_: &str, f: &str| scope.function(f);
        for desired in plan::desired_deliveries(spec, &lambda_arn) {
            let current = self.current_delivery(&desired.name).await?;
            ops.extend(plan::diff_delivery(
                &desired,
                current.as_ref().map(|c| &c.state),
            ));
        }
        for mut desired in plan::desired_mappings(spec) {
            desired.on_failure = desired
                .on_failure
                .map(|arn| crate::desired::Sub::new(arn).resolve(env));
            let current = match self.current_stream(&desired.stream).await? {
                Some(stream) => self.current_mapping(&desired, &stream.arn).await?,
                None => None,
            };
            ops.extend(plan::diff_mapping(
                &desired,
                current.as_ref().map(|c| (c.uuid.as_str(), &c.state)),
            ));
        }
        // Left-overs last: what replaced them exists first.
        ops.extend(Box::pin(self.orphans()).await?);
        Ok(Plan { ops })
    }

    /// Makes AWS match the declaration: creates what is missing (Lambda functions with their
    /// code included), updates what differs, and waits for each resource to be ready before
    /// the next one uses it. Idempotent: a second apply uploads and changes nothing, and an
    /// apply that stopped half-way is completed by the next one.
    ///
    /// # Errors
    /// [`ProvisionError::ReplacementRefused`] when the plan replaces a delivery stream and
    /// `allow_replace` is false (nothing is changed then); otherwise the first failed call.
    pub async fn apply(&self, allow_replace: bool) -> Result<ApplyReport, ProvisionError> {
        let env = self.env().await?;
        let plan = Box::pin(self.plan_in(&env)).await?;
        if plan.has_replacements() && !allow_replace {
            let what = plan
                .ops
                .iter()
                .filter_map(|o| match o {
                    Op::ReplaceDelivery { desired, reason } => {
                        Some(format!("delivery stream {} ({reason})", desired.name))
                    }
                    _ => None,
                })
                .collect();
            return Err(ProvisionError::ReplacementRefused(what));
        }
        let mut report = ApplyReport::default();
        for op in &plan.ops {
            Box::pin(self.run(op, &env, &mut report)).await?;
        }
        Box::pin(self.sync_tags(&mut report)).await?;
        Ok(report)
    }

    /// The ARN of the role delivery `name` uses: the declared one, or kpipe's.
    fn delivery_role_arn(&self, name: &str, env: &Env) -> String {
        let d = self
            .spec()
            .deliveries
            .iter()
            .find(|d| d.name == name)
            .expect("aws: a declared delivery");
        match d.role_arn {
            Some(arn) => arn.to_owned(),
            None => env
                .value(&format!(
                    "{}.Arn",
                    crate::cloudformation::logical_id(d.id, "DeliveryRole")
                ))
                .unwrap_or_default()
                .to_owned(),
        }
    }

    async fn run(
        &self,
        op: &Op,
        env: &Env,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        match op {
            Op::CreateBucket { bucket } => {
                Box::pin(self.run_create_bucket(bucket, env, report)).await?
            }
            Op::EnsureRole { role, .. } => {
                let r = crate::desired::roles(self.spec())
                    .into_iter()
                    .find(|r| &r.name == role)
                    .expect("aws: the plan names a declared role");
                if self.ensure_role(&r, env).await? {
                    report.actions.push(format!("created iam role {role}"));
                }
            }
            Op::CreateFunction(f) => {
                let tags = crate::desired::tags(self.spec(), &[]);
                Box::pin(self.create_function(f, &tags)).await?;
                report.actions.push(format!(
                    "created lambda function {} (code {})",
                    f.name, f.code_sha256
                ));
            }
            Op::UpdateFunctionCode { desired } => {
                Box::pin(self.update_function_code(desired)).await?;
                report.actions.push(format!(
                    "updated the code of lambda function {} ({})",
                    desired.name, desired.code_sha256
                ));
            }
            Op::UpdateFunctionConfig { desired, changed } => {
                Box::pin(self.update_function_config(desired)).await?;
                report.actions.push(format!(
                    "updated lambda function {}: {}",
                    desired.name,
                    changed.join(", ")
                ));
            }
            Op::CreateStream(s) => {
                let mode = ks::StreamModeDetails::builder()
                    .stream_mode(if s.shards.is_some() {
                        ks::StreamMode::Provisioned
                    } else {
                        ks::StreamMode::OnDemand
                    })
                    .build()
                    .map_err(|e| {
                        call_err(
                            &format!("kinesis stream {}", s.name),
                            "build the request for",
                            e,
                        )
                    })?;
                let mut req = self
                    .kinesis
                    .create_stream()
                    .stream_name(&s.name)
                    .stream_mode_details(mode);
                if let Some(n) = s.shards {
                    req = req.shard_count(n as i32);
                }
                // Only when not the default: services that predate the setting refuse it.
                if s.max_record_size_kib != crate::desired::aws_defaults::MAX_RECORD_SIZE_KIB {
                    req = req.max_record_size_in_kib(s.max_record_size_kib as i32);
                }
                req.send()
                    .await
                    .map_err(|e| call_err(&format!("kinesis stream {}", s.name), "create", e))?;
                self.wait_stream_active(&s.name).await?;
                let own = self
                    .spec()
                    .streams
                    .iter()
                    .find(|x| x.name == s.name)
                    .map_or(&[][..], |x| x.tags);
                self.kinesis
                    .add_tags_to_stream()
                    .stream_name(&s.name)
                    .set_tags(Some(
                        crate::desired::tags(self.spec(), own).into_iter().collect(),
                    ))
                    .send()
                    .await
                    .map_err(|e| call_err(&format!("kinesis stream {}", s.name), "tag", e))?;
                if s.retention_hours != 24 {
                    Box::pin(self.run(
                        &Op::SetRetention {
                            stream: s.name.clone(),
                            from: 24,
                            to: s.retention_hours,
                        },
                        env,
                        report,
                    ))
                    .await?;
                }
                if s.kms_key.is_some() {
                    Box::pin(self.run(
                        &Op::SetEncryption {
                            stream: s.name.clone(),
                            kms_key: s.kms_key.clone(),
                        },
                        env,
                        report,
                    ))
                    .await?;
                }
                report
                    .actions
                    .push(format!("created kinesis stream {}", s.name));
            }
            Op::UpdateShardCount { stream, steps, .. } => {
                Box::pin(self.run_update_shard_count(stream, steps, report)).await?
            }
            Op::UpdateStreamMode { stream, to_shards } => {
                Box::pin(self.run_update_stream_mode(stream, to_shards, report)).await?
            }
            Op::SetMaxRecordSize { stream, to, .. } => {
                Box::pin(self.run_set_max_record_size(stream, to, report)).await?
            }
            Op::SetRetention { stream, from, to } => {
                Box::pin(self.run_set_retention(stream, from, to, report)).await?
            }
            Op::SetEncryption { stream, kms_key } => {
                Box::pin(self.run_set_encryption(stream, kms_key, report)).await?
            }
            Op::SetDeliveryEncryption {
                delivery,
                encryption,
            } => Box::pin(self.run_set_delivery_encryption(delivery, encryption, report)).await?,
            Op::CreateDelivery(d) => {
                self.create_delivery(d, env).await?;
                report
                    .actions
                    .push(format!("created firehose delivery stream {}", d.name));
            }
            Op::UpdateDelivery { desired, changed } => {
                let current = self.current_delivery(&desired.name).await?.ok_or_else(|| {
                    ProvisionError::NotReady {
                        resource: format!("delivery stream {}", desired.name),
                        status: "missing".into(),
                    }
                })?;
                self.ensure_error_log(desired).await?;
                let role = self.delivery_role_arn(&desired.name, env);
                let update = self.destination_update(
                    desired,
                    &role,
                    env.value("AWS::Partition").unwrap_or("aws"),
                )?;
                self.firehose
                    .update_destination()
                    .delivery_stream_name(&desired.name)
                    .current_delivery_stream_version_id(current.version_id)
                    .destination_id(current.destination_id)
                    .extended_s3_destination_update(update)
                    .send()
                    .await
                    .map_err(|e| {
                        call_err(&format!("delivery stream {}", desired.name), "update", e)
                    })?;
                report.actions.push(format!(
                    "updated firehose delivery stream {}: {}",
                    desired.name,
                    changed.join(", ")
                ));
            }
            Op::ReplaceDelivery { desired, reason } => {
                self.delete_delivery(&desired.name).await?;
                self.create_delivery(desired, env).await?;
                report.actions.push(format!(
                    "replaced firehose delivery stream {} ({reason})",
                    desired.name
                ));
            }
            Op::Prune(o) => self.delete_orphan(o, report).await?,
            Op::CreateMapping(m) => Box::pin(self.run_create_mapping(m, report)).await?,
            Op::UpdateMapping {
                uuid,
                desired: m,
                changed,
            } => Box::pin(self.run_update_mapping(uuid, m, changed, report)).await?,
        }
        Ok(())
    }

    /// Runs `Op::CreateBucket` (see `run_update_shard_count` on why each op has a method).
    async fn run_create_bucket(
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

    /// Runs one `Op::UpdateShardCount` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_update_shard_count(
        &self,
        stream: &str,
        steps: &[u32],
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        for n in steps {
            self.kinesis
                .update_shard_count()
                .stream_name(stream)
                .target_shard_count(*n as i32)
                .scaling_type(ks::ScalingType::UniformScaling)
                .send()
                .await
                .map_err(|e| {
                    call_err(
                        &format!("kinesis stream {stream}"),
                        "update the shard count of",
                        e,
                    )
                })?;
            self.wait_stream_active(stream).await?;
            report
                .actions
                .push(format!("kinesis stream {stream}: {n} shards"));
        }
        Ok(())
    }

    /// Runs one `Op::UpdateStreamMode` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_update_stream_mode(
        &self,
        stream: &str,
        to_shards: &Option<u32>,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let arn = self.stream_arn(stream).await?;
        let mode = ks::StreamModeDetails::builder()
            .stream_mode(if to_shards.is_some() {
                ks::StreamMode::Provisioned
            } else {
                ks::StreamMode::OnDemand
            })
            .build()
            .map_err(|e| {
                call_err(
                    &format!("kinesis stream {stream}"),
                    "build the request for",
                    e,
                )
            })?;
        self.kinesis
            .update_stream_mode()
            .stream_arn(arn)
            .stream_mode_details(mode)
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("kinesis stream {stream}"),
                    "switch the capacity mode of",
                    e,
                )
            })?;
        self.wait_stream_active(stream).await?;
        report
            .actions
            .push(format!("kinesis stream {stream}: capacity mode switched"));
        Ok(())
    }

    /// Runs one `Op::SetMaxRecordSize` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_set_max_record_size(
        &self,
        stream: &str,
        to: &u32,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let arn = self.stream_arn(stream).await?;
        self.kinesis
            .update_max_record_size()
            .stream_arn(arn)
            .max_record_size_in_kib(*to as i32)
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("kinesis stream {stream}"),
                    "change the maximum record size of",
                    e,
                )
            })?;
        self.wait_stream_active(stream).await?;
        report
            .actions
            .push(format!("kinesis stream {stream}: records up to {to} KiB"));
        Ok(())
    }

    /// Runs one `Op::SetRetention` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_set_retention(
        &self,
        stream: &str,
        from: &u32,
        to: &u32,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let r = if to > from {
            self.kinesis
                .increase_stream_retention_period()
                .stream_name(stream)
                .retention_period_hours(*to as i32)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    call_err(
                        &format!("kinesis stream {stream}"),
                        "increase the retention of",
                        e,
                    )
                })
        } else {
            self.kinesis
                .decrease_stream_retention_period()
                .stream_name(stream)
                .retention_period_hours(*to as i32)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    call_err(
                        &format!("kinesis stream {stream}"),
                        "decrease the retention of",
                        e,
                    )
                })
        };
        r?;
        self.wait_stream_active(stream).await?;
        report
            .actions
            .push(format!("kinesis stream {stream}: retention {to} h"));
        Ok(())
    }

    /// Runs one `Op::SetEncryption` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_set_encryption(
        &self,
        stream: &str,
        kms_key: &Option<String>,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        match kms_key {
            Some(key) => self
                .kinesis
                .start_stream_encryption()
                .stream_name(stream)
                .encryption_type(ks::EncryptionType::Kms)
                .key_id(key)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| {
                    call_err(&format!("kinesis stream {stream}"), "start encrypting", e)
                })?,
            None => {
                let key = self
                    .current_stream(stream)
                    .await?
                    .and_then(|c| c.state.kms_key)
                    .unwrap_or_default();
                self.kinesis
                    .stop_stream_encryption()
                    .stream_name(stream)
                    .encryption_type(ks::EncryptionType::Kms)
                    .key_id(key)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| {
                        call_err(&format!("kinesis stream {stream}"), "stop encrypting", e)
                    })?
            }
        }
        self.wait_stream_active(stream).await?;
        report
            .actions
            .push(format!("kinesis stream {stream}: encryption updated"));
        Ok(())
    }

    /// Runs one `Op::SetDeliveryEncryption` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_set_delivery_encryption(
        &self,
        delivery: &str,
        encryption: &Option<String>,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let resource = format!("firehose delivery stream {delivery}");
        match encryption {
            Some(key) => {
                self.firehose
                    .start_delivery_stream_encryption()
                    .delivery_stream_name(delivery)
                    .delivery_stream_encryption_configuration_input(
                        encryption_input(key)
                            .map_err(|e| call_err(&resource, "build the request for", e))?,
                    )
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "start encrypting", e))?;
            }
            None => {
                self.firehose
                    .stop_delivery_stream_encryption()
                    .delivery_stream_name(delivery)
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "stop encrypting", e))?;
            }
        }
        report.actions.push(format!(
            "{resource}: encryption {}",
            encryption.as_deref().unwrap_or("off")
        ));
        Ok(())
    }

    /// Runs one `Op::CreateMapping` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_create_mapping(
        &self,
        m: &crate::desired::MappingState,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let resource = format!("lambda event source mapping {} -> {}", m.stream, m.function);
        let Some(stream) = self.current_stream(&m.stream).await? else {
            return Err(ProvisionError::NotReady {
                resource,
                status: "its stream does not exist".into(),
            });
        };
        let position =
            aws_sdk_lambda::types::EventSourcePosition::from(m.starting_position.as_str());
        let out = self
            .lambda
            .create_event_source_mapping()
            .function_name(&m.function)
            .event_source_arn(stream.arn)
            .starting_position(position)
            .set_starting_position_timestamp(
                m.starting_position_timestamp
                    .map(aws_sdk_lambda::primitives::DateTime::from_secs),
            )
            .batch_size(m.batch_size as i32)
            .bisect_batch_on_function_error(m.bisect_on_error)
            .maximum_retry_attempts(m.maximum_retries as i32)
            .maximum_record_age_in_seconds(m.maximum_record_age_secs as i32)
            .maximum_batching_window_in_seconds(m.batch_window_secs as i32)
            .parallelization_factor(m.parallelization as i32)
            .function_response_types(
                aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
            )
            .set_tumbling_window_in_seconds(m.tumbling_window_secs.map(|w| w as i32))
            .set_destination_config(m.on_failure.as_deref().map(destination_config))
            .set_filter_criteria((!m.filters.is_empty()).then(|| filter_criteria(&m.filters)))
            .enabled(true)
            .send()
            .await
            .map_err(|e| call_err(&resource, "create", e))?;
        report.actions.push(format!(
            "created {resource} ({})",
            out.uuid().unwrap_or_default()
        ));
        Ok(())
    }

    /// Runs one `Op::UpdateMapping` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    async fn run_update_mapping(
        &self,
        uuid: &str,
        m: &crate::desired::MappingState,
        changed: &[String],
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let resource = format!("lambda event source mapping {} -> {}", m.stream, m.function);
        self.lambda
            .update_event_source_mapping()
            .uuid(uuid)
            .batch_size(m.batch_size as i32)
            .bisect_batch_on_function_error(m.bisect_on_error)
            .maximum_retry_attempts(m.maximum_retries as i32)
            .maximum_record_age_in_seconds(m.maximum_record_age_secs as i32)
            .maximum_batching_window_in_seconds(m.batch_window_secs as i32)
            .parallelization_factor(m.parallelization as i32)
            .function_response_types(
                aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
            )
            // An empty destination and an empty filter list remove them (UpdateEventSourceMapping).
            .tumbling_window_in_seconds(m.tumbling_window_secs.map_or(0, |w| w as i32))
            .destination_config(destination_config(m.on_failure.as_deref().unwrap_or("")))
            .filter_criteria(filter_criteria(&m.filters))
            .send()
            .await
            .map_err(|e| call_err(&resource, "update", e))?;
        report
            .actions
            .push(format!("updated {resource}: {}", changed.join(", ")));
        Ok(())
    }

    fn processing(
        &self,
        d: &DeliveryState,
    ) -> Result<Option<fh::ProcessingConfiguration>, ProvisionError> {
        if d.processors.is_empty() {
            return Ok(None);
        }
        let mut processors = Vec::new();
        for (kind, params) in &d.processors {
            let mut p = fh::Processor::builder().r#type(fh::ProcessorType::from(kind.as_str()));
            for (name, value) in params {
                p = p.parameters(
                    fh::ProcessorParameter::builder()
                        .parameter_name(fh::ProcessorParameterName::from(name.as_str()))
                        .parameter_value(value)
                        .build()
                        .map_err(|e| {
                            call_err(
                                &format!("delivery stream {}", d.name),
                                "build the processors of",
                                e,
                            )
                        })?,
                );
            }
            processors.push(p.build().map_err(|e| {
                call_err(
                    &format!("delivery stream {}", d.name),
                    "build the processors of",
                    e,
                )
            })?);
        }
        Ok(Some(
            fh::ProcessingConfiguration::builder()
                .enabled(true)
                .set_processors(Some(processors))
                .build(),
        ))
    }

    fn destination_update(
        &self,
        d: &DeliveryState,
        role: &str,
        partition: &str,
    ) -> Result<fh::ExtendedS3DestinationUpdate, ProvisionError> {
        Ok(fh::ExtendedS3DestinationUpdate::builder()
            .role_arn(role)
            .bucket_arn(crate::arn::bucket(partition, &d.bucket))
            .set_prefix(d.prefix.clone())
            .set_error_output_prefix(d.error_prefix.clone())
            .buffering_hints(
                fh::BufferingHints::builder()
                    .size_in_mbs(d.size_mib as i32)
                    .interval_in_seconds(d.interval_secs as i32)
                    .build(),
            )
            .compression_format(fh::CompressionFormat::from(d.compression.as_str()))
            .set_processing_configuration(self.processing(d)?)
            .set_file_extension(d.file_extension.clone())
            .set_custom_time_zone(d.time_zone.clone())
            .set_cloud_watch_logging_options(logging(d))
            .set_encryption_configuration(encryption_configuration(d)?)
            .set_s3_backup_mode(d.backup.as_ref().map(|_| fh::S3BackupMode::Enabled))
            .set_s3_backup_update(backup_update(d, role, partition)?)
            .build())
    }

    pub(crate) async fn create_delivery(
        &self,
        d: &DeliveryState,
        env: &Env,
    ) -> Result<(), ProvisionError> {
        let resource = format!("delivery stream {}", d.name);
        self.ensure_error_log(d).await?;
        let role = self.delivery_role_arn(&d.name, env);
        let mut dest = fh::ExtendedS3DestinationConfiguration::builder()
            .role_arn(&role)
            .bucket_arn(crate::arn::bucket(
                env.value("AWS::Partition").unwrap_or("aws"),
                &d.bucket,
            ))
            .set_prefix(d.prefix.clone())
            .set_error_output_prefix(d.error_prefix.clone())
            .buffering_hints(
                fh::BufferingHints::builder()
                    .size_in_mbs(d.size_mib as i32)
                    .interval_in_seconds(d.interval_secs as i32)
                    .build(),
            )
            .compression_format(fh::CompressionFormat::from(d.compression.as_str()))
            .set_processing_configuration(self.processing(d)?)
            .set_file_extension(d.file_extension.clone())
            .set_custom_time_zone(d.time_zone.clone())
            .set_cloud_watch_logging_options(logging(d))
            .set_encryption_configuration(encryption_configuration(d)?)
            .set_s3_backup_mode(d.backup.as_ref().map(|_| fh::S3BackupMode::Enabled))
            .set_s3_backup_configuration(backup_configuration(
                d,
                &role,
                env.value("AWS::Partition").unwrap_or("aws"),
            )?);
        if d.dynamic_partitioning {
            dest = dest.dynamic_partitioning_configuration(
                fh::DynamicPartitioningConfiguration::builder()
                    .enabled(true)
                    .build(),
            );
        }
        let dest = dest
            .build()
            .map_err(|e| call_err(&resource, "build the request for", e))?;
        let own = self
            .spec()
            .deliveries
            .iter()
            .find(|x| x.name == d.name)
            .map_or(&[][..], |x| x.tags);
        let tags: Vec<fh::Tag> = crate::desired::tags(self.spec(), own)
            .into_iter()
            .filter_map(|(k, v)| fh::Tag::builder().key(k).value(v).build().ok())
            .collect();
        let mut req = self
            .firehose
            .create_delivery_stream()
            .delivery_stream_name(&d.name)
            .set_tags(Some(tags))
            .extended_s3_destination_configuration(dest);
        match &d.source_stream {
            Some(stream) => {
                let arn = self.stream_arn(stream).await?;
                req = req
                    .delivery_stream_type(fh::DeliveryStreamType::KinesisStreamAsSource)
                    .kinesis_stream_source_configuration(
                        fh::KinesisStreamSourceConfiguration::builder()
                            .kinesis_stream_arn(arn)
                            .role_arn(&role)
                            .build()
                            .map_err(|e| call_err(&resource, "build the request for", e))?,
                    );
            }
            None => req = req.delivery_stream_type(fh::DeliveryStreamType::DirectPut),
        }
        if let Some(key) = &d.encryption {
            req = req.delivery_stream_encryption_configuration_input(
                encryption_input(key)
                    .map_err(|e| call_err(&resource, "build the request for", e))?,
            );
        }
        req.send()
            .await
            .map_err(|e| call_err(&resource, "create", e))?;
        self.wait_until(&resource, || async {
            Ok(match self.current_delivery(&d.name).await? {
                Some(c) => Wait::status(&c.status, "ACTIVE", &["CREATING_FAILED"]),
                None => Wait::Pending("missing".into()),
            })
        })
        .await
    }

    pub(crate) async fn delete_delivery(&self, name: &str) -> Result<bool, ProvisionError> {
        let resource = format!("delivery stream {name}");
        match self
            .firehose
            .delete_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(false);
            }
            Err(e) => return Err(call_err(&resource, "delete", e)),
        }
        self.wait_until(&resource, || async {
            Ok(match self.current_delivery(name).await? {
                None => Wait::Done,
                Some(c) => Wait::Pending(c.status),
            })
        })
        .await?;
        Ok(true)
    }

    /// Creates the log group and stream the delivery stream logs errors to, when missing
    /// (Firehose does not create them itself).
    async fn ensure_error_log(&self, d: &DeliveryState) -> Result<(), ProvisionError> {
        let Some(group) = &d.error_log_group else {
            return Ok(());
        };
        let resource = format!("log group {group}");
        let exists = |e: &dyn aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata| {
            e.code() == Some("ResourceAlreadyExistsException")
        };
        let own = self
            .spec()
            .deliveries
            .iter()
            .find(|x| x.name == d.name)
            .map_or(&[][..], |x| x.tags);
        match self
            .logs
            .create_log_group()
            .log_group_name(group)
            .set_tags(Some(
                crate::desired::tags(self.spec(), own).into_iter().collect(),
            ))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if exists(&e) => {}
            Err(e) => return Err(call_err(&resource, "create", e)),
        }
        match self
            .logs
            .create_log_stream()
            .log_group_name(group)
            .log_stream_name(crate::desired::ERROR_LOG_STREAM)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if exists(&e) => Ok(()),
            Err(e) => Err(call_err(&resource, "create the error log stream of", e)),
        }
    }

    /// Writes the declared tags on the streams, delivery streams and functions kpipe created
    /// for the pipeline (those carrying its `kpipe:pipeline` tag) where they differ, so a tag
    /// added to the declaration reaches resources made before. Resources kpipe did not create
    /// are left as they are.
    async fn sync_tags(&self, report: &mut ApplyReport) -> Result<(), ProvisionError> {
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

/// Delivery errors logged to CloudWatch Logs ("Monitor Amazon Data Firehose using CloudWatch
/// Logs", <https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-logs.html>).
fn logging(d: &DeliveryState) -> Option<fh::CloudWatchLoggingOptions> {
    d.error_log_group.as_ref().map(|group| {
        fh::CloudWatchLoggingOptions::builder()
            .enabled(true)
            .log_group_name(group)
            .log_stream_name(crate::desired::ERROR_LOG_STREAM)
            .build()
    })
}

/// The source record backup of a new delivery stream (`s3_backup`; Firehose API,
/// S3DestinationConfiguration:
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_S3DestinationConfiguration.html>).
fn backup_configuration(
    d: &DeliveryState,
    role: &str,
    partition: &str,
) -> Result<Option<fh::S3DestinationConfiguration>, ProvisionError> {
    let Some(b) = &d.backup else {
        return Ok(None);
    };
    fh::S3DestinationConfiguration::builder()
        .role_arn(role)
        .bucket_arn(crate::arn::bucket(partition, &b.bucket))
        .set_prefix(b.prefix.clone())
        .set_error_output_prefix(b.error_prefix.clone())
        .buffering_hints(backup_buffering(b))
        .compression_format(fh::CompressionFormat::from(b.compression.as_str()))
        .set_encryption_configuration(kms_configuration(&d.name, b.kms_key.as_deref())?)
        .build()
        .map(Some)
        .map_err(|e| {
            call_err(
                &format!("delivery stream {}", d.name),
                "build the backup of",
                e,
            )
        })
}

/// The source record backup of an existing delivery stream.
fn backup_update(
    d: &DeliveryState,
    role: &str,
    partition: &str,
) -> Result<Option<fh::S3DestinationUpdate>, ProvisionError> {
    let Some(b) = &d.backup else {
        return Ok(None);
    };
    Ok(Some(
        fh::S3DestinationUpdate::builder()
            .role_arn(role)
            .bucket_arn(crate::arn::bucket(partition, &b.bucket))
            .set_prefix(b.prefix.clone())
            .set_error_output_prefix(b.error_prefix.clone())
            .buffering_hints(backup_buffering(b))
            .compression_format(fh::CompressionFormat::from(b.compression.as_str()))
            .set_encryption_configuration(kms_configuration(&d.name, b.kms_key.as_deref())?)
            .build(),
    ))
}

fn backup_buffering(b: &crate::desired::BackupState) -> fh::BufferingHints {
    fh::BufferingHints::builder()
        .size_in_mbs(b.size_mib as i32)
        .interval_in_seconds(b.interval_secs as i32)
        .build()
}

/// SSE-KMS of delivered objects with the destination's key; `None` leaves the bucket's
/// default (Firehose API, EncryptionConfiguration:
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_EncryptionConfiguration.html>).
fn encryption_configuration(
    d: &DeliveryState,
) -> Result<Option<fh::EncryptionConfiguration>, ProvisionError> {
    kms_configuration(&d.name, d.kms_key.as_deref())
}

/// SSE-KMS with `key`, for the objects of delivery stream `name` (or of its backup).
fn kms_configuration(
    name: &str,
    key: Option<&str>,
) -> Result<Option<fh::EncryptionConfiguration>, ProvisionError> {
    let Some(key) = key else {
        return Ok(None);
    };
    let kms = fh::KmsEncryptionConfig::builder()
        .awskms_key_arn(key)
        .build()
        .map_err(|e| {
            call_err(
                &format!("delivery stream {name}"),
                "build the encryption of",
                e,
            )
        })?;
    Ok(Some(
        fh::EncryptionConfiguration::builder()
            .kms_encryption_config(kms)
            .build(),
    ))
}

/// Firehose's encryption input for [`DeliveryState::encryption`](crate::desired::DeliveryState):
/// `AWS_OWNED_CMK`, or a customer managed key by ARN (Amazon Data Firehose, Data protection:
/// <https://docs.aws.amazon.com/firehose/latest/dev/encryption.html>).
fn encryption_input(
    key: &str,
) -> Result<fh::DeliveryStreamEncryptionConfigurationInput, aws_sdk_firehose::error::BuildError> {
    let input = fh::DeliveryStreamEncryptionConfigurationInput::builder();
    if key == crate::desired::AWS_OWNED_CMK {
        input.key_type(fh::KeyType::AwsOwnedCmk).build()
    } else {
        input
            .key_type(fh::KeyType::CustomerManagedCmk)
            .key_arn(key)
            .build()
    }
}

/// A mapping's on-failure destination (`""` removes it).
fn destination_config(arn: &str) -> aws_sdk_lambda::types::DestinationConfig {
    aws_sdk_lambda::types::DestinationConfig::builder()
        .on_failure(
            aws_sdk_lambda::types::OnFailure::builder()
                .destination(arn)
                .build(),
        )
        .build()
}

/// A mapping's event filtering patterns (none: every record reaches the function).
fn filter_criteria(patterns: &[String]) -> aws_sdk_lambda::types::FilterCriteria {
    aws_sdk_lambda::types::FilterCriteria::builder()
        .set_filters(Some(
            patterns
                .iter()
                .map(|p| aws_sdk_lambda::types::Filter::builder().pattern(p).build())
                .collect(),
        ))
        .build()
}
