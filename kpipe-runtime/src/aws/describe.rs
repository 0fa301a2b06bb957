//! Reading what exists: the Describe calls, normalised into the plan's states (AWS's defaults
//! read as the declaration's, so nothing differs that was not changed).

use super::plan::{DeliveryState, MappingState, StreamState};
use super::{Aws, ProvisionError, call_err};
use crate::desired::aws_defaults;
use crate::pipeline::Pipeline;
use aws_sdk_firehose::types as fh;
use aws_sdk_kinesis::types as ks;
use std::collections::HashMap;

/// A stream that exists.
#[derive(Debug)]
pub(crate) struct CurrentStream {
    pub(crate) state: StreamState,
    pub(crate) arn: String,
    /// `CREATING`, `ACTIVE`, `UPDATING`, `DELETING`.
    pub(crate) status: String,
}

/// A delivery stream that exists.
#[derive(Debug)]
pub(crate) struct CurrentDelivery {
    pub(crate) state: DeliveryState,
    /// What UpdateDestination needs.
    pub(crate) version_id: String,
    pub(crate) destination_id: String,
    pub(crate) status: String,
}

/// An event source mapping that exists.
#[derive(Debug)]
pub(crate) struct CurrentMapping {
    pub(crate) uuid: String,
    pub(crate) state: MappingState,
}

impl<P: Pipeline> Aws<P> {
    /// Stream `name`'s ARN; empty when it does not exist (the call that takes it then says so).
    pub(crate) async fn stream_arn(&self, name: &str) -> Result<String, ProvisionError> {
        Ok(self
            .current_stream(name)
            .await?
            .map(|c| c.arn)
            .unwrap_or_default())
    }

    /// A stream as AWS describes it; `None` when there is none.
    pub(crate) async fn current_stream(
        &self,
        name: &str,
    ) -> Result<Option<CurrentStream>, ProvisionError> {
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
                    // Not described: the stream has the default (services that predate the
                    // setting, such as moto, do not report it).
                    max_record_size_kib: d
                        .max_record_size_in_kib()
                        .map_or(crate::desired::aws_defaults::MAX_RECORD_SIZE_KIB, |k| {
                            k as u32
                        }),
                    kms_key: match d.encryption_type() {
                        Some(ks::EncryptionType::Kms) => d.key_id().map(str::to_owned),
                        _ => None,
                    },
                };
                Ok(Some(CurrentStream {
                    state,
                    arn: d.stream_arn().to_owned(),
                    status: d.stream_status().as_str().to_owned(),
                }))
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

    /// A delivery stream as AWS describes it; `None` when there is none.
    pub(crate) async fn current_delivery(
        &self,
        name: &str,
    ) -> Result<Option<CurrentDelivery>, ProvisionError> {
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
                    // arn:<partition>:s3:::<bucket>
                    e.bucket_arn()
                        .rsplit_once(":::")
                        .map_or(e.bucket_arn(), |(_, b)| b)
                        .to_owned()
                })
                .unwrap_or_default(),
            prefix: non_empty(ext.and_then(|e| e.prefix())),
            error_prefix: non_empty(ext.and_then(|e| e.error_output_prefix())),
            size_mib: ext
                .and_then(|e| e.buffering_hints())
                .and_then(|b| b.size_in_mbs())
                .unwrap_or(aws_defaults::S3_BUFFER_MIB as i32) as u32,
            interval_secs: ext
                .and_then(|e| e.buffering_hints())
                .and_then(|b| b.interval_in_seconds())
                .unwrap_or(aws_defaults::S3_BUFFER_SECS as i32) as u32,
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
            error_log_group: ext
                .and_then(|e| e.cloud_watch_logging_options())
                .filter(|c| c.enabled().unwrap_or(false))
                .and_then(|c| non_empty(c.log_group_name())),
            kms_key: ext
                .and_then(|e| e.encryption_configuration())
                .and_then(|c| c.kms_encryption_config())
                .map(|k| k.awskms_key_arn().to_owned()),
            // On while enabled or enabling; a description without a status (moto) counts by
            // its key type.
            encryption: d
                .delivery_stream_encryption_configuration()
                .filter(|e| {
                    e.status().is_none_or(|s| {
                        matches!(
                            s,
                            fh::DeliveryStreamEncryptionStatus::Enabled
                                | fh::DeliveryStreamEncryptionStatus::Enabling
                        )
                    })
                })
                .and_then(|e| match e.key_type()? {
                    fh::KeyType::CustomerManagedCmk => e.key_arn().map(str::to_owned),
                    _ => Some(crate::desired::AWS_OWNED_CMK.to_owned()),
                }),
            conversion: ext
                .and_then(|e| e.data_format_conversion_configuration())
                .and_then(conversion_state),
            backup: ext
                .filter(|e| e.s3_backup_mode() == Some(&fh::S3BackupMode::Enabled))
                .and_then(|e| e.s3_backup_description())
                .map(|b| crate::desired::BackupState {
                    bucket: b
                        .bucket_arn()
                        .rsplit_once(":::")
                        .map_or(b.bucket_arn(), |(_, x)| x)
                        .to_owned(),
                    prefix: non_empty(b.prefix()),
                    error_prefix: non_empty(b.error_output_prefix()),
                    size_mib: b
                        .buffering_hints()
                        .and_then(|h| h.size_in_mbs())
                        .unwrap_or(aws_defaults::S3_BUFFER_MIB as i32)
                        as u32,
                    interval_secs: b
                        .buffering_hints()
                        .and_then(|h| h.interval_in_seconds())
                        .unwrap_or(aws_defaults::S3_BUFFER_SECS as i32)
                        as u32,
                    compression: b.compression_format().as_str().to_owned(),
                    kms_key: b
                        .encryption_configuration()
                        .and_then(|c| c.kms_encryption_config())
                        .map(|k| k.awskms_key_arn().to_owned()),
                }),
        };
        Ok(Some(CurrentDelivery {
            state,
            version_id: d.version_id().to_owned(),
            destination_id: dest
                .map(|x| x.destination_id().to_owned())
                .unwrap_or_default(),
            status: d.delivery_stream_status().as_str().to_owned(),
        }))
    }

    pub(crate) async fn bucket_exists(&self, bucket: &str) -> Result<bool, ProvisionError> {
        match self.s3.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(call_err(&format!("s3 bucket {bucket}"), "look up", e)),
        }
    }

    /// The mapping from `stream_arn` to the consumer's function; `None` when there is none.
    pub(crate) async fn current_mapping(
        &self,
        desired: &MappingState,
        stream_arn: &str,
    ) -> Result<Option<CurrentMapping>, ProvisionError> {
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
            batch_size: m
                .batch_size()
                .unwrap_or(aws_defaults::MAPPING_BATCH_SIZE as i32) as u32,
            bisect_on_error: m.bisect_batch_on_function_error().unwrap_or(false),
            maximum_retries: m
                .maximum_retry_attempts()
                .map_or(aws_defaults::MAPPING_MAXIMUM_RETRIES, i64::from),
            maximum_record_age_secs: m
                .maximum_record_age_in_seconds()
                .map_or(aws_defaults::MAPPING_MAXIMUM_RECORD_AGE_SECS, i64::from),
            batch_window_secs: m
                .maximum_batching_window_in_seconds()
                .unwrap_or(aws_defaults::MAPPING_BATCH_WINDOW_SECS as i32)
                as u32,
            parallelization: m
                .parallelization_factor()
                .unwrap_or(aws_defaults::MAPPING_PARALLELIZATION as i32)
                as u32,
            report_item_failures: m
                .function_response_types()
                .contains(&aws_sdk_lambda::types::FunctionResponseType::ReportBatchItemFailures),
            tumbling_window_secs: m
                .tumbling_window_in_seconds()
                .filter(|w| *w > 0)
                .map(|w| w as u32),
            on_failure: m
                .destination_config()
                .and_then(|c| c.on_failure())
                .and_then(|f| f.destination())
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            filters: m
                .filter_criteria()
                .map(|c| {
                    c.filters()
                        .iter()
                        .filter_map(|f| f.pattern().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            ..desired.clone()
        };
        Ok(Some(CurrentMapping {
            uuid: m.uuid().unwrap_or_default().to_owned(),
            state,
        }))
    }

    /// The tags of stream `name` (empty when it has none or is gone).
    pub(crate) async fn stream_tags(
        &self,
        name: &str,
    ) -> Result<HashMap<String, String>, ProvisionError> {
        match self
            .kinesis
            .list_tags_for_stream()
            .stream_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
                .collect()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(HashMap::new())
            }
            Err(e) => Err(call_err(
                &format!("kinesis stream {name}"),
                "read the tags of",
                e,
            )),
        }
    }

    /// The tags of delivery stream `name` (empty when it has none or is gone).
    pub(crate) async fn delivery_tags(
        &self,
        name: &str,
    ) -> Result<HashMap<String, String>, ProvisionError> {
        match self
            .firehose
            .list_tags_for_delivery_stream()
            .delivery_stream_name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().unwrap_or_default().to_owned()))
                .collect()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(HashMap::new())
            }
            Err(e) => Err(call_err(
                &format!("delivery stream {name}"),
                "read the tags of",
                e,
            )),
        }
    }
}

/// A delivery stream's conversion as Firehose describes it; settings it leaves out read as
/// the serializers' documented defaults (Firehose API, ParquetSerDe and OrcSerDe).
fn conversion_state(
    c: &fh::DataFormatConversionConfiguration,
) -> Option<crate::desired::ConversionState> {
    use crate::desired::SerdeState;
    const MIB: i32 = 1024 * 1024;
    if !c.enabled().unwrap_or(true) {
        return None;
    }
    let schema = c.schema_configuration()?;
    let serializer = c.output_format_configuration()?.serializer()?;
    let serde = if let Some(p) = serializer.parquet_ser_de() {
        SerdeState::Parquet {
            compression: p.compression().map_or("SNAPPY", |c| c.as_str()).to_owned(),
            block_size_bytes: p.block_size_bytes().unwrap_or(256 * MIB),
            page_size_bytes: p.page_size_bytes().unwrap_or(MIB),
            writer_version: p.writer_version().map_or("V1", |v| v.as_str()).to_owned(),
        }
    } else {
        let o = serializer.orc_ser_de()?;
        SerdeState::Orc {
            compression: o.compression().map_or("SNAPPY", |c| c.as_str()).to_owned(),
            stripe_size_bytes: o.stripe_size_bytes().unwrap_or(64 * MIB),
            block_size_bytes: o.block_size_bytes().unwrap_or(256 * MIB),
        }
    };
    Some(crate::desired::ConversionState {
        database: schema.database_name().unwrap_or_default().to_owned(),
        table: schema.table_name().unwrap_or_default().to_owned(),
        serde,
    })
}
