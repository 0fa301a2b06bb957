//! Stream operations: shard count, capacity mode, maximum record size, retention and
//! encryption, each applied and waited for.

use crate::aws::{ApplyReport, Aws, ProvisionError, call_err};
use crate::pipeline::Pipeline;
use aws_sdk_kinesis::types as ks;

impl<P: Pipeline> Aws<P> {
    /// Runs one `Op::UpdateShardCount` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    pub(super) async fn run_update_shard_count(
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
    pub(super) async fn run_update_stream_mode(
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
    pub(super) async fn run_set_max_record_size(
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
    pub(super) async fn run_set_retention(
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
    pub(super) async fn run_set_encryption(
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
}
