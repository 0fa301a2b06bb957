//! Event source mapping operations: a consumer's mapping created and updated in place.

use crate::aws::{ApplyReport, Aws, ProvisionError, call_err};
use crate::pipeline::Pipeline;

impl<P: Pipeline> Aws<P> {
    /// Runs one `Op::CreateMapping` (a method of its own: each op's request builders get their own
    /// stack frame, which keeps debug builds' `run` small).
    pub(super) async fn run_create_mapping(
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
    pub(super) async fn run_update_mapping(
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
}

/// A mapping's on-failure destination (`""` removes it).
pub(super) fn destination_config(arn: &str) -> aws_sdk_lambda::types::DestinationConfig {
    aws_sdk_lambda::types::DestinationConfig::builder()
        .on_failure(
            aws_sdk_lambda::types::OnFailure::builder()
                .destination(arn)
                .build(),
        )
        .build()
}

/// A mapping's event filtering patterns (none: every record reaches the function).
pub(super) fn filter_criteria(patterns: &[String]) -> aws_sdk_lambda::types::FilterCriteria {
    aws_sdk_lambda::types::FilterCriteria::builder()
        .set_filters(Some(
            patterns
                .iter()
                .map(|p| aws_sdk_lambda::types::Filter::builder().pattern(p).build())
                .collect(),
        ))
        .build()
}
