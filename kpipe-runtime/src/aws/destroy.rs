//! `destroy`: deletes what kpipe created for the pipeline, and only that.
//!
//! A resource kpipe creates carries the tag `kpipe:pipeline = <Pipeline>`
//! ([`crate::desired::OWNER_TAG`]). Before deleting anything, `destroy` checks that every
//! declared resource that exists carries it: a same-named stream another team created (with
//! its data) is refused with a clear message, and nothing is deleted, unless forced. Buckets
//! are always kept.

use super::{ApplyReport, Aws, ProvisionError, call_err};
use crate::desired::OWNER_TAG;
use crate::pipeline::Pipeline;
use std::collections::HashMap;

impl<P: Pipeline> Aws<P> {
    /// Deletes the event source mappings, the delivery streams, the Glue tables, the
    /// functions, the streams and the roles kpipe created for the pipeline. Resources already gone are skipped; buckets
    /// are kept (kpipe never deletes data in S3).
    ///
    /// # Errors
    /// [`ProvisionError::NotOwned`] when a declared resource exists without the pipeline's
    /// `kpipe:pipeline` tag and `force` is false (nothing is deleted then); otherwise the
    /// first failed call.
    pub async fn destroy(&self, force: bool) -> Result<ApplyReport, ProvisionError> {
        let spec = self.spec();
        let ours =
            |tags: &HashMap<String, String>| tags.get(OWNER_TAG).is_some_and(|v| v == spec.name);
        let mut foreign = Vec::new();
        for s in spec.streams {
            if self.current_stream(s.name).await?.is_some()
                && !ours(&self.stream_tags(s.name).await?)
            {
                foreign.push(format!("kinesis stream {}", s.name));
            }
        }
        for d in spec.deliveries {
            if self.current_delivery(d.name).await?.is_some()
                && !ours(&self.delivery_tags(d.name).await?)
            {
                foreign.push(format!("firehose delivery stream {}", d.name));
            }
        }
        let tables: Vec<(&str, &str)> = spec
            .destinations
            .iter()
            .filter_map(|s| s.conversion)
            .filter(|c| c.table.create)
            .map(|c| (c.table.database, c.table.name))
            .collect();
        for (db, name) in &tables {
            if let Some(owner) = self.table_owner(db, name).await?
                && owner.as_deref() != Some(spec.name)
            {
                foreign.push(format!("glue table {db}.{name}"));
            }
        }
        for (_, lambda) in crate::desired::functions(spec) {
            if let Some(tags) = self.function_tags(lambda.name).await?
                && !ours(&tags)
            {
                foreign.push(format!("lambda function {}", lambda.name));
            }
        }
        if !foreign.is_empty() && !force {
            return Err(ProvisionError::NotOwned {
                pipeline: spec.name.to_owned(),
                resources: foreign,
            });
        }

        let mut report = ApplyReport::default();
        for desired in super::plan::desired_mappings(spec) {
            let Some(stream) = self.current_stream(&desired.stream).await? else {
                continue;
            };
            if let Some(m) = self.current_mapping(&desired, &stream.arn).await? {
                let resource = format!(
                    "lambda event source mapping {} -> {}",
                    desired.stream, desired.function
                );
                self.lambda
                    .delete_event_source_mapping()
                    .uuid(&m.uuid)
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
        // The tables only describe the objects; the objects stay in S3. Their database may
        // hold other tables and is kept.
        for (db, name) in &tables {
            if self.table_owner(db, name).await?.is_some() {
                self.delete_table(db, name).await?;
                report
                    .actions
                    .push(format!("deleted glue table {db}.{name}"));
            }
        }
        for (_, lambda) in crate::desired::functions(spec) {
            if self.delete_function(lambda.name).await? {
                report
                    .actions
                    .push(format!("deleted lambda function {}", lambda.name));
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
                            None => super::wait::Wait::Done,
                            Some(c) => super::wait::Wait::Pending(c.status),
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
        for role in crate::desired::roles(spec) {
            if self.delete_role(&role).await? {
                report
                    .actions
                    .push(format!("deleted iam role {}", role.name));
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

    /// The tags of function `name`; `None` when it does not exist.
    async fn function_tags(
        &self,
        name: &str,
    ) -> Result<Option<HashMap<String, String>>, ProvisionError> {
        match self.lambda.get_function().function_name(name).send().await {
            Ok(out) => Ok(Some(out.tags().cloned().unwrap_or_default())),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(call_err(&format!("lambda function {name}"), "describe", e)),
        }
    }
}
