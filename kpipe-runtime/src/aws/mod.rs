//! Provisioning against AWS (or any endpoint, such as moto): `plan`, `apply`, `destroy`.
//! Feature `aws`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # kpipe_runtime::pipeline! { pipeline Telemetry { } }
//! let config = aws_config::load_from_env().await; // honours AWS_ENDPOINT_URL
//! let aws = kpipe_runtime::aws::Aws::<Telemetry>::new(&config);
//! let plan = aws.plan().await?;
//! println!("{plan}");
//! let report = aws.apply(false).await?; // refuses replacements unless allowed
//! # Ok(()) }
//! ```
//!
//! - `plan` reads the current state (DescribeStreamSummary, DescribeDeliveryStream) and
//!   compares it with the declaration after normalising AWS's defaults.
//! - `apply` creates what is missing and updates what differs, waiting for ACTIVE between
//!   steps; it is idempotent and resumes a partial apply. Replacements (dynamic partitioning
//!   turned on or off, a new source) are refused unless allowed.
//! - `destroy` deletes delivery streams, then streams, then the roles kpipe created; buckets are
//!   kept (kpipe never deletes data) and reported.

pub(crate) mod credentials;
pub mod kinesalite;
pub mod moto;
pub mod plan;
pub mod producer;

use self::plan::{DeliveryState, MappingState, Op, Plan, StreamState};
use crate::pipeline::Pipeline;
use crate::spec::{PipelineSpec, SourceSpec};
use aws_sdk_firehose::types as fh;
use aws_sdk_kinesis::types as ks;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

/// A provisioning step that failed: which resource, which action, and AWS's answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProvisionError {
    /// An AWS call failed.
    Call {
        /// `kinesis stream sensor-readings`, ...
        resource: String,
        /// `create`, `describe`, ...
        action: &'static str,
        /// The SDK's error, with its context.
        message: String,
    },
    /// A resource did not become ACTIVE (or gone) in time, or ended in a failed state.
    NotReady {
        /// The resource.
        resource: String,
        /// Its last status.
        status: String,
    },
    /// The plan replaces resources and replacements were not allowed.
    ReplacementRefused(Vec<String>),
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisionError::Call {
                resource,
                action,
                message,
            } => write!(f, "could not {action} {resource}: {message}"),
            ProvisionError::NotReady { resource, status } => {
                write!(f, "{resource} did not become ready (status {status})")
            }
            ProvisionError::ReplacementRefused(what) => write!(
                f,
                "the plan replaces {}; rerun with --allow-replace (or apply(true)) to delete and recreate",
                what.join(", ")
            ),
        }
    }
}

impl std::error::Error for ProvisionError {}

fn call_err<E: std::error::Error + 'static>(
    resource: &str,
    action: &'static str,
    e: E,
) -> ProvisionError {
    ProvisionError::Call {
        resource: resource.to_owned(),
        action,
        message: aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
    }
}

/// What `apply` or `destroy` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplyReport {
    /// One line per action taken.
    pub actions: Vec<String>,
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            return f.write_str("Nothing to do.");
        }
        for a in &self.actions {
            writeln!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Provisioning of pipeline `P` with the clients of one AWS configuration.
pub struct Aws<P> {
    kinesis: aws_sdk_kinesis::Client,
    firehose: aws_sdk_firehose::Client,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    lambda: aws_sdk_lambda::Client,
    region: String,
    poll: Duration,
    _pipeline: PhantomData<P>,
}

impl<P> fmt::Debug for Aws<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aws").field("region", &self.region).finish()
    }
}

/// How long to wait for a resource to become ACTIVE or gone.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

impl<P: Pipeline> Aws<P> {
    /// Clients from an `SdkConfig` (endpoint, region and credentials as configured; S3 uses
    /// path-style addressing, which local endpoints need).
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        let s3 = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(true)
            .build();
        Aws {
            kinesis: aws_sdk_kinesis::Client::new(config),
            firehose: aws_sdk_firehose::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            iam: aws_sdk_iam::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
            lambda: aws_sdk_lambda::Client::new(config),
            region: config
                .region()
                .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string()),
            poll: Duration::from_millis(250),
            _pipeline: PhantomData,
        }
    }

    /// Poll ACTIVE status this often (default 250 ms, growing to 5 s).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll = every;
        self
    }

    fn spec(&self) -> &'static PipelineSpec {
        P::SPEC
    }

    async fn account(&self) -> Result<String, ProvisionError> {
        let id = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| call_err("the caller's account", "identify", e))?;
        Ok(id.account().unwrap_or("000000000000").to_owned())
    }

    fn role_name(&self, delivery: &str) -> String {
        let mut name = format!("kpipe-{}-{delivery}", self.spec().name.to_lowercase());
        name.truncate(64);
        name
    }

    async fn current_stream(
        &self,
        name: &str,
    ) -> Result<Option<(StreamState, String, String)>, ProvisionError> {
        match self
            .kinesis
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
        {
            Ok(out) => {
                let Some(d) = out.stream_description_summary() else {
                    return Ok(None);
                };
                let provisioned = d
                    .stream_mode_details()
                    .is_none_or(|m| *m.stream_mode() == ks::StreamMode::Provisioned);
                let state = StreamState {
                    name: name.to_owned(),
                    shards: provisioned.then(|| d.open_shard_count() as u32),
                    retention_hours: d.retention_period_hours() as u32,
                    kms_key: match d.encryption_type() {
                        Some(ks::EncryptionType::Kms) => d.key_id().map(str::to_owned),
                        _ => None,
                    },
                };
                Ok(Some((
                    state,
                    d.stream_arn().to_owned(),
                    d.stream_status().as_str().to_owned(),
                )))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(call_err(&format!("kinesis stream {name}"), "describe", e)),
        }
    }

    async fn current_delivery(
        &self,
        name: &str,
    ) -> Result<Option<(DeliveryState, String, String, String)>, ProvisionError> {
        let out = match self
            .firehose
            .describe_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(call_err(&format!("delivery stream {name}"), "describe", e)),
        };
        let Some(d) = out.delivery_stream_description() else {
            return Ok(None);
        };
        let dest = d.destinations().first();
        let ext = dest.and_then(|x| x.extended_s3_destination_description());
        let non_empty = |s: Option<&str>| s.filter(|v| !v.is_empty()).map(str::to_owned);
        let state = DeliveryState {
            name: name.to_owned(),
            source_stream: d
                .source()
                .and_then(|s| s.kinesis_stream_source_description())
                .and_then(|k| k.kinesis_stream_arn())
                .and_then(|arn| arn.rsplit_once("stream/").map(|(_, n)| n.to_owned())),
            bucket: ext
                .map(|e| {
                    e.bucket_arn()
                        .trim_start_matches("arn:aws:s3:::")
                        .to_owned()
                })
                .unwrap_or_default(),
            prefix: non_empty(ext.and_then(|e| e.prefix())),
            error_prefix: non_empty(ext.and_then(|e| e.error_output_prefix())),
            size_mib: ext
                .and_then(|e| e.buffering_hints())
                .and_then(|b| b.size_in_mbs())
                .unwrap_or(5) as u32,
            interval_secs: ext
                .and_then(|e| e.buffering_hints())
                .and_then(|b| b.interval_in_seconds())
                .unwrap_or(300) as u32,
            compression: ext.map_or("UNCOMPRESSED".to_owned(), |e| {
                e.compression_format().as_str().to_owned()
            }),
            dynamic_partitioning: ext
                .and_then(|e| e.dynamic_partitioning_configuration())
                .and_then(|c| c.enabled())
                .unwrap_or(false),
            processors: ext
                .and_then(|e| e.processing_configuration())
                .filter(|c| c.enabled().unwrap_or(true))
                .map(|c| {
                    c.processors()
                        .iter()
                        .map(|p| {
                            let mut params: Vec<(String, String)> = p
                                .parameters()
                                .iter()
                                .map(|x| {
                                    (
                                        x.parameter_name().as_str().to_owned(),
                                        x.parameter_value().to_owned(),
                                    )
                                })
                                .collect();
                            params.sort();
                            (p.r#type().as_str().to_owned(), params)
                        })
                        .collect()
                })
                .unwrap_or_default(),
            file_extension: non_empty(ext.and_then(|e| e.file_extension())),
            time_zone: non_empty(ext.and_then(|e| e.custom_time_zone())).filter(|tz| tz != "UTC"),
        };
        Ok(Some((
            state,
            d.version_id().to_owned(),
            dest.map(|x| x.destination_id().to_owned())
                .unwrap_or_default(),
            d.delivery_stream_status().as_str().to_owned(),
        )))
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, ProvisionError> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(call_err(&format!("s3 bucket {bucket}"), "look up", e)),
        }
    }

    fn lambda_arn(&self, account: &str, function: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{account}:function:{function}",
            self.region
        )
    }

    /// Reads the current state and returns what `apply` would do.
    ///
    /// # Errors
    /// When a Describe call fails (other than "not found").
    pub async fn plan(&self) -> Result<Plan, ProvisionError> {
        let spec = self.spec();
        let account = self.account().await?;
        let mut ops = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for s in spec.destinations {
            if s.create_bucket && seen.insert(s.bucket) && !self.bucket_exists(s.bucket).await? {
                ops.push(Op::CreateBucket {
                    bucket: s.bucket.to_owned(),
                });
            }
        }
        for d in spec.deliveries {
            if d.role_arn.is_none() {
                ops.push(Op::EnsureRole {
                    role: self.role_name(d.name),
                    delivery: d.name.to_owned(),
                });
            }
        }
        for desired in plan::desired_streams(spec) {
            let current = self.current_stream(&desired.name).await?;
            ops.extend(plan::diff_stream(&desired, current.as_ref().map(|c| &c.0)));
        }
        for desired in plan::desired_deliveries(spec, &|f| self.lambda_arn(&account, f)) {
            let current = self.current_delivery(&desired.name).await?;
            ops.extend(plan::diff_delivery(
                &desired,
                current.as_ref().map(|c| &c.0),
            ));
        }
        for desired in plan::desired_mappings(spec) {
            let current = match self.current_stream(&desired.stream).await? {
                Some((_, arn, _)) => self.current_mapping(&desired, &arn).await?,
                None => None,
            };
            let function_exists =
                current.is_some() || self.function_exists(&desired.function).await?;
            ops.extend(plan::diff_mapping(
                &desired,
                current.as_ref().map(|(uuid, state)| (uuid.as_str(), state)),
                function_exists,
            ));
        }
        Ok(Plan { ops })
    }

    async fn function_exists(&self, function: &str) -> Result<bool, ProvisionError> {
        match self
            .lambda
            .get_function()
            .function_name(function)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(call_err(
                &format!("lambda function {function}"),
                "look up",
                e,
            )),
        }
    }

    /// The mapping from `stream_arn` to the consumer's function, as `(uuid, state)`.
    async fn current_mapping(
        &self,
        desired: &MappingState,
        stream_arn: &str,
    ) -> Result<Option<(String, MappingState)>, ProvisionError> {
        let resource = format!(
            "lambda event source mapping {} -> {}",
            desired.stream, desired.function
        );
        let out = match self
            .lambda
            .list_event_source_mappings()
            .function_name(&desired.function)
            .event_source_arn(stream_arn)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(call_err(&resource, "list", e)),
        };
        let Some(m) = out.event_source_mappings().first() else {
            return Ok(None);
        };
        let state = MappingState {
            batch_size: m.batch_size().unwrap_or(100) as u32,
            bisect_on_error: m.bisect_batch_on_function_error().unwrap_or(false),
            maximum_retries: m.maximum_retry_attempts().map_or(-1, i64::from),
            batch_window_secs: m.maximum_batching_window_in_seconds().unwrap_or(0) as u32,
            parallelization: m.parallelization_factor().unwrap_or(1) as u32,
            report_item_failures: m
                .function_response_types()
                .contains(&aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures),
            ..desired.clone()
        };
        Ok(Some((m.uuid().unwrap_or_default().to_owned(), state)))
    }

    /// Makes AWS match the declaration. Idempotent: a second apply does nothing, and an apply
    /// that stopped half-way is completed by the next one.
    ///
    /// # Errors
    /// [`ProvisionError::ReplacementRefused`] when the plan replaces a delivery stream and
    /// `allow_replace` is false (nothing is changed then); otherwise the first failed call.
    pub async fn apply(&self, allow_replace: bool) -> Result<ApplyReport, ProvisionError> {
        let plan = self.plan().await?;
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
        let account = self.account().await?;
        let mut report = ApplyReport::default();
        for op in &plan.ops {
            self.run(op, &account, &mut report).await?;
        }
        Ok(report)
    }

    async fn run(
        &self,
        op: &Op,
        account: &str,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        match op {
            Op::CreateBucket { bucket } => {
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
                    .map_err(|e| {
                        call_err(&format!("s3 bucket {bucket}"), "block public access on", e)
                    })?;
                report.actions.push(format!("created s3 bucket {bucket}"));
            }
            Op::EnsureRole { role, delivery } => {
                let d = self
                    .spec()
                    .deliveries
                    .iter()
                    .find(|d| d.name == delivery)
                    .expect("aws: the plan names a declared delivery");
                let created = self.ensure_role(role, d, account).await?;
                if created {
                    report.actions.push(format!("created iam role {role}"));
                }
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
                req.send()
                    .await
                    .map_err(|e| call_err(&format!("kinesis stream {}", s.name), "create", e))?;
                self.wait_stream_active(&s.name).await?;
                if s.retention_hours != 24 {
                    Box::pin(self.run(
                        &Op::SetRetention {
                            stream: s.name.clone(),
                            from: 24,
                            to: s.retention_hours,
                        },
                        account,
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
                        account,
                        report,
                    ))
                    .await?;
                }
                report
                    .actions
                    .push(format!("created kinesis stream {}", s.name));
            }
            Op::UpdateShardCount { stream, steps, .. } => {
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
            }
            Op::UpdateStreamMode { stream, to_shards } => {
                let arn = self
                    .current_stream(stream)
                    .await?
                    .map(|c| c.1)
                    .unwrap_or_default();
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
            }
            Op::SetRetention { stream, from, to } => {
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
            }
            Op::SetEncryption { stream, kms_key } => {
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
                            .and_then(|c| c.0.kms_key)
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
            }
            Op::CreateDelivery(d) => {
                self.create_delivery(d, account).await?;
                report
                    .actions
                    .push(format!("created firehose delivery stream {}", d.name));
            }
            Op::UpdateDelivery { desired, changed } => {
                let (_, version, dest_id, _) = self
                    .current_delivery(&desired.name)
                    .await?
                    .ok_or_else(|| ProvisionError::NotReady {
                        resource: format!("delivery stream {}", desired.name),
                        status: "missing".into(),
                    })?;
                let role = self.role_arn_for(&desired.name, account).await?;
                let update = self.destination_update(desired, &role)?;
                self.firehose
                    .update_destination()
                    .delivery_stream_name(&desired.name)
                    .current_delivery_stream_version_id(version)
                    .destination_id(dest_id)
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
                self.create_delivery(desired, account).await?;
                report.actions.push(format!(
                    "replaced firehose delivery stream {} ({reason})",
                    desired.name
                ));
            }
            Op::CreateMapping(m) => {
                let resource =
                    format!("lambda event source mapping {} -> {}", m.stream, m.function);
                let Some((_, stream_arn, _)) = self.current_stream(&m.stream).await? else {
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
                    .event_source_arn(stream_arn)
                    .starting_position(position)
                    .batch_size(m.batch_size as i32)
                    .bisect_batch_on_function_error(m.bisect_on_error)
                    .maximum_retry_attempts(m.maximum_retries as i32)
                    .maximum_batching_window_in_seconds(m.batch_window_secs as i32)
                    .parallelization_factor(m.parallelization as i32)
                    .function_response_types(
                        aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
                    )
                    .enabled(true)
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "create", e))?;
                report.actions.push(format!(
                    "created {resource} ({})",
                    out.uuid().unwrap_or_default()
                ));
            }
            Op::UpdateMapping {
                uuid,
                desired: m,
                changed,
            } => {
                let resource =
                    format!("lambda event source mapping {} -> {}", m.stream, m.function);
                self.lambda
                    .update_event_source_mapping()
                    .uuid(uuid)
                    .batch_size(m.batch_size as i32)
                    .bisect_batch_on_function_error(m.bisect_on_error)
                    .maximum_retry_attempts(m.maximum_retries as i32)
                    .maximum_batching_window_in_seconds(m.batch_window_secs as i32)
                    .parallelization_factor(m.parallelization as i32)
                    .function_response_types(
                        aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures,
                    )
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "update", e))?;
                report
                    .actions
                    .push(format!("updated {resource}: {}", changed.join(", ")));
            }
            Op::AwaitFunction(m) => report.actions.push(format!(
                "skipped lambda event source mapping {} -> {}: function {} is not deployed \
                 (deploy it with the template or `cargo lambda deploy`, then apply again)",
                m.stream, m.function, m.function
            )),
        }
        Ok(())
    }

    async fn role_arn_for(&self, delivery: &str, account: &str) -> Result<String, ProvisionError> {
        let d = self
            .spec()
            .deliveries
            .iter()
            .find(|d| d.name == delivery)
            .expect("aws: a declared delivery");
        if let Some(arn) = d.role_arn {
            return Ok(arn.to_owned());
        }
        let name = self.role_name(d.name);
        match self.iam.get_role().role_name(&name).send().await {
            Ok(out) => Ok(out.role().map(|r| r.arn().to_owned()).unwrap_or_default()),
            Err(_) => Ok(format!("arn:aws:iam::{account}:role/{name}")),
        }
    }

    /// Creates the delivery's role if needed and (re)writes its policy; true when created.
    async fn ensure_role(
        &self,
        role: &str,
        d: &crate::spec::DeliverySpec,
        account: &str,
    ) -> Result<bool, ProvisionError> {
        let resource = format!("iam role {role}");
        let created = match self.iam.get_role().role_name(role).send().await {
            Ok(_) => false,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_no_such_entity_exception()) =>
            {
                let trust = serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{ "Effect": "Allow", "Principal": { "Service": "firehose.amazonaws.com" }, "Action": "sts:AssumeRole" }]
                });
                self.iam
                    .create_role()
                    .role_name(role)
                    .assume_role_policy_document(trust.to_string())
                    .description(format!("kpipe: Firehose delivery stream {}", d.name))
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "create", e))?;
                true
            }
            Err(e) => return Err(call_err(&resource, "look up", e)),
        };
        let spec = self.spec();
        let s3 = spec
            .destination(d.destination)
            .expect("aws: a declared destination");
        let mut statements = vec![serde_json::json!({
            "Effect": "Allow",
            "Action": ["s3:AbortMultipartUpload", "s3:GetBucketLocation", "s3:GetObject", "s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:PutObject"],
            "Resource": [format!("arn:aws:s3:::{}", s3.bucket), format!("arn:aws:s3:::{}/*", s3.bucket)]
        })];
        if let SourceSpec::Stream(id) = d.source {
            let name = spec.stream(id).map_or(id, |s| s.name);
            statements.push(serde_json::json!({
                "Effect": "Allow",
                "Action": ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetShardIterator", "kinesis:GetRecords", "kinesis:ListShards"],
                "Resource": format!("arn:aws:kinesis:{}:{account}:stream/{name}", self.region)
            }));
        }
        if let Some(t) = d.transform.and_then(|id| spec.transform(id)) {
            statements.push(serde_json::json!({
                "Effect": "Allow",
                "Action": ["lambda:InvokeFunction", "lambda:GetFunctionConfiguration"],
                "Resource": self.lambda_arn(account, t.lambda.name)
            }));
        }
        let policy = serde_json::json!({ "Version": "2012-10-17", "Statement": statements });
        self.iam
            .put_role_policy()
            .role_name(role)
            .policy_name("delivery")
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(|e| call_err(&resource, "write the policy of", e))?;
        Ok(created)
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
    ) -> Result<fh::ExtendedS3DestinationUpdate, ProvisionError> {
        Ok(fh::ExtendedS3DestinationUpdate::builder()
            .role_arn(role)
            .bucket_arn(format!("arn:aws:s3:::{}", d.bucket))
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
            .build())
    }

    async fn create_delivery(
        &self,
        d: &DeliveryState,
        account: &str,
    ) -> Result<(), ProvisionError> {
        let resource = format!("delivery stream {}", d.name);
        let role = self.role_arn_for(&d.name, account).await?;
        let mut dest = fh::ExtendedS3DestinationConfiguration::builder()
            .role_arn(&role)
            .bucket_arn(format!("arn:aws:s3:::{}", d.bucket))
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
            .set_custom_time_zone(d.time_zone.clone());
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
        let mut req = self
            .firehose
            .create_delivery_stream()
            .delivery_stream_name(&d.name)
            .extended_s3_destination_configuration(dest);
        match &d.source_stream {
            Some(stream) => {
                let arn = self
                    .current_stream(stream)
                    .await?
                    .map(|c| c.1)
                    .unwrap_or_default();
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
        req.send()
            .await
            .map_err(|e| call_err(&resource, "create", e))?;
        self.wait_until(&resource, || async {
            Ok(match self.current_delivery(&d.name).await? {
                Some((_, _, _, status)) => Wait::status(&status, "ACTIVE", &["CREATING_FAILED"]),
                None => Wait::Pending("missing".into()),
            })
        })
        .await
    }

    async fn delete_delivery(&self, name: &str) -> Result<bool, ProvisionError> {
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
                Some((_, _, _, status)) => Wait::Pending(status),
            })
        })
        .await?;
        Ok(true)
    }

    async fn wait_stream_active(&self, name: &str) -> Result<(), ProvisionError> {
        self.wait_until(&format!("kinesis stream {name}"), || async {
            Ok(match self.current_stream(name).await? {
                Some((_, _, status)) => Wait::status(&status, "ACTIVE", &[]),
                None => Wait::Pending("missing".into()),
            })
        })
        .await
    }

    /// Polls with backoff until `check` is done or fails, at most [`WAIT_LIMIT`].
    async fn wait_until<F, Fut>(&self, resource: &str, check: F) -> Result<(), ProvisionError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Wait, ProvisionError>>,
    {
        let start = tokio::time::Instant::now();
        let mut delay = self.poll;
        loop {
            match check().await? {
                Wait::Done => return Ok(()),
                Wait::Failed(status) => {
                    return Err(ProvisionError::NotReady {
                        resource: resource.to_owned(),
                        status,
                    });
                }
                Wait::Pending(status) if start.elapsed() > WAIT_LIMIT => {
                    return Err(ProvisionError::NotReady {
                        resource: resource.to_owned(),
                        status,
                    });
                }
                Wait::Pending(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Deletes the delivery streams, then the streams, then the roles kpipe created. Resources
    /// already gone are skipped; buckets are kept.
    ///
    /// # Errors
    /// The first failed call.
    pub async fn destroy(&self) -> Result<ApplyReport, ProvisionError> {
        let spec = self.spec();
        let mut report = ApplyReport::default();
        for desired in plan::desired_mappings(spec) {
            let Some((_, arn, _)) = self.current_stream(&desired.stream).await? else {
                continue;
            };
            if let Some((uuid, _)) = self.current_mapping(&desired, &arn).await? {
                let resource = format!(
                    "lambda event source mapping {} -> {}",
                    desired.stream, desired.function
                );
                self.lambda
                    .delete_event_source_mapping()
                    .uuid(&uuid)
                    .send()
                    .await
                    .map_err(|e| call_err(&resource, "delete", e))?;
                report.actions.push(format!("deleted {resource}"));
            }
        }
        for d in spec.deliveries {
            if self.delete_delivery(d.name).await? {
                report
                    .actions
                    .push(format!("deleted firehose delivery stream {}", d.name));
            }
        }
        for s in spec.streams {
            match self
                .kinesis
                .delete_stream()
                .stream_name(s.name)
                .enforce_consumer_deletion(true)
                .send()
                .await
            {
                Ok(_) => {
                    let resource = format!("kinesis stream {}", s.name);
                    self.wait_until(&resource, || async {
                        Ok(match self.current_stream(s.name).await? {
                            None => Wait::Done,
                            Some((_, _, status)) => Wait::Pending(status),
                        })
                    })
                    .await?;
                    report
                        .actions
                        .push(format!("deleted kinesis stream {}", s.name));
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|x| x.is_resource_not_found_exception()) => {}
                Err(e) => return Err(call_err(&format!("kinesis stream {}", s.name), "delete", e)),
            }
        }
        for d in spec.deliveries.iter().filter(|d| d.role_arn.is_none()) {
            let role = self.role_name(d.name);
            let _ = self
                .iam
                .delete_role_policy()
                .role_name(&role)
                .policy_name("delivery")
                .send()
                .await;
            match self.iam.delete_role().role_name(&role).send().await {
                Ok(_) => report.actions.push(format!("deleted iam role {role}")),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|x| x.is_no_such_entity_exception()) => {}
                Err(e) => return Err(call_err(&format!("iam role {role}"), "delete", e)),
            }
        }
        let mut kept = std::collections::BTreeSet::new();
        for s in spec.destinations.iter().filter(|s| s.create_bucket) {
            if kept.insert(s.bucket) && self.bucket_exists(s.bucket).await? {
                report.actions.push(format!(
                    "kept s3 bucket {} (kpipe never deletes data)",
                    s.bucket
                ));
            }
        }
        Ok(report)
    }
}

enum Wait {
    Done,
    Pending(String),
    Failed(String),
}

impl Wait {
    fn status(status: &str, ready: &str, failed: &[&str]) -> Wait {
        if status == ready {
            Wait::Done
        } else if failed.contains(&status) {
            Wait::Failed(status.to_owned())
        } else {
            Wait::Pending(status.to_owned())
        }
    }
}
