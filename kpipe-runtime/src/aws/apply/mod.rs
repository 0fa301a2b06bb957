//! `plan` and `apply`: the desired state against what Describe calls return, then the
//! operations that close the gap, in dependency order (buckets and roles, functions, streams,
//! delivery streams, mappings).
//!
//! This file plans and dispatches; each resource's operations are in a file of its own:
//! `streams.rs`, `deliveries.rs`, `mappings.rs`, and `resources.rs` (buckets and tags).

use super::plan::{self, Op, Plan};
use super::{ApplyReport, Aws, ProvisionError, call_err};
use crate::desired::Env;
use crate::pipeline::Pipeline;
use aws_sdk_kinesis::types as ks;

mod deliveries;
mod mappings;
mod resources;
mod streams;
mod tables;

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
        // Glue tables before the delivery streams that read their schema.
        let tables =
            plan::desired_tables(spec).map_err(|e| ProvisionError::InvalidSpec(e.to_string()))?;
        for desired in tables {
            let current = self.current_table(&desired.database, &desired.name).await?;
            ops.extend(plan::diff_table(&desired, current.as_ref()));
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
                    Op::ReplaceTable { desired, reason } => Some(format!(
                        "glue table {}.{} ({reason})",
                        desired.database, desired.name
                    )),
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
            Op::CreateTable(t) => Box::pin(self.run_create_table(t, report)).await?,
            Op::UpdateTable { desired, changed } => {
                Box::pin(self.run_update_table(desired, changed, report)).await?
            }
            Op::ReplaceTable { desired, .. } => {
                Box::pin(self.run_replace_table(desired, report)).await?
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
}
