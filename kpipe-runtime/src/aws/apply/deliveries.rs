//! Delivery stream operations: create, update and delete, with the destination's
//! configuration (processors, logging, encryption, backup) built from the desired state.

use crate::aws::plan::DeliveryState;
use crate::aws::wait::Wait;
use crate::aws::{ApplyReport, Aws, ProvisionError, call_err};
use crate::desired::Env;
use crate::pipeline::Pipeline;
use aws_sdk_firehose::types as fh;

impl<P: Pipeline> Aws<P> {
    /// Runs one `Op::SetDeliveryEncryption` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    pub(super) async fn run_set_delivery_encryption(
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

    pub(super) fn processing(
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

    pub(super) fn destination_update(
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
            // Off unless declared: an update turns a conversion no longer declared off.
            .data_format_conversion_configuration(
                self.conversion_configuration(d, role)?.unwrap_or_else(|| {
                    fh::DataFormatConversionConfiguration::builder()
                        .enabled(false)
                        .build()
                }),
            )
            .build())
    }

    /// The delivery stream's DataFormatConversionConfiguration: OpenX JSON SerDe in, the
    /// Parquet or ORC SerDe out, the schema from the Glue table's latest version in this
    /// account and region (Firehose API, DataFormatConversionConfiguration:
    /// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_DataFormatConversionConfiguration.html>).
    pub(super) fn conversion_configuration(
        &self,
        d: &DeliveryState,
        role: &str,
    ) -> Result<Option<fh::DataFormatConversionConfiguration>, ProvisionError> {
        let Some(c) = &d.conversion else {
            return Ok(None);
        };
        let serializer = match &c.serde {
            crate::desired::SerdeState::Parquet {
                compression,
                block_size_bytes,
                page_size_bytes,
                writer_version,
            } => fh::Serializer::builder().parquet_ser_de(
                fh::ParquetSerDe::builder()
                    .compression(fh::ParquetCompression::from(compression.as_str()))
                    .block_size_bytes(*block_size_bytes)
                    .page_size_bytes(*page_size_bytes)
                    .writer_version(fh::ParquetWriterVersion::from(writer_version.as_str()))
                    .build(),
            ),
            crate::desired::SerdeState::Orc {
                compression,
                stripe_size_bytes,
                block_size_bytes,
            } => fh::Serializer::builder().orc_ser_de(
                fh::OrcSerDe::builder()
                    .compression(fh::OrcCompression::from(compression.as_str()))
                    .stripe_size_bytes(*stripe_size_bytes)
                    .block_size_bytes(*block_size_bytes)
                    .build(),
            ),
        };
        Ok(Some(
            fh::DataFormatConversionConfiguration::builder()
                .enabled(true)
                .input_format_configuration(
                    fh::InputFormatConfiguration::builder()
                        .deserializer(
                            fh::Deserializer::builder()
                                .open_x_json_ser_de(fh::OpenXJsonSerDe::builder().build())
                                .build(),
                        )
                        .build(),
                )
                .output_format_configuration(
                    fh::OutputFormatConfiguration::builder()
                        .serializer(serializer.build())
                        .build(),
                )
                .schema_configuration(
                    fh::SchemaConfiguration::builder()
                        .database_name(&c.database)
                        .table_name(&c.table)
                        .region(&self.region)
                        .role_arn(role)
                        .version_id("LATEST")
                        .build(),
                )
                .build(),
        ))
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
            )?)
            .set_data_format_conversion_configuration(self.conversion_configuration(d, &role)?);
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
    pub(super) async fn ensure_error_log(&self, d: &DeliveryState) -> Result<(), ProvisionError> {
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
}

/// Delivery errors logged to CloudWatch Logs ("Monitor Amazon Data Firehose using CloudWatch
/// Logs", <https://docs.aws.amazon.com/firehose/latest/dev/monitoring-with-cloudwatch-logs.html>).
pub(super) fn logging(d: &DeliveryState) -> Option<fh::CloudWatchLoggingOptions> {
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
pub(super) fn backup_configuration(
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
pub(super) fn backup_update(
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

pub(super) fn backup_buffering(b: &crate::desired::BackupState) -> fh::BufferingHints {
    fh::BufferingHints::builder()
        .size_in_mbs(b.size_mib as i32)
        .interval_in_seconds(b.interval_secs as i32)
        .build()
}

/// SSE-KMS of delivered objects with the destination's key; `None` leaves the bucket's
/// default (Firehose API, EncryptionConfiguration:
/// <https://docs.aws.amazon.com/firehose/latest/APIReference/API_EncryptionConfiguration.html>).
pub(super) fn encryption_configuration(
    d: &DeliveryState,
) -> Result<Option<fh::EncryptionConfiguration>, ProvisionError> {
    kms_configuration(&d.name, d.kms_key.as_deref())
}

/// SSE-KMS with `key`, for the objects of delivery stream `name` (or of its backup).
pub(super) fn kms_configuration(
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
pub(super) fn encryption_input(
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
