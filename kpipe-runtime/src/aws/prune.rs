//! Resources the declaration no longer has: `plan` lists what kpipe created for the pipeline
//! (it carries the pipeline's `kpipe:pipeline` tag) that is not declared any more, as
//! `- destroy`; `apply --prune` deletes it, and a stream, which holds data, only with
//! `--prune-data` too. Buckets are never pruned.

use super::plan::{Op, Orphan, OrphanKind};
use super::{ApplyReport, Aws, ProvisionError, call_err};
use crate::desired::OWNER_TAG;
use crate::pipeline::Pipeline;
use std::collections::{BTreeSet, HashMap};

/// What `apply` deletes of what the declaration no longer has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Prune {
    /// Nothing: left-over resources stay, and `apply` says so (the default).
    #[default]
    Nothing,
    /// Functions, delivery streams and roles; streams stay.
    Resources,
    /// Streams too, with their data.
    WithData,
}

impl<P: Pipeline> Aws<P> {
    /// Whether `tags` mark a resource of this pipeline.
    fn owned(&self, tags: &HashMap<String, String>) -> bool {
        tags.get(OWNER_TAG).is_some_and(|v| v == self.spec().name)
    }

    /// The resources kpipe created for the pipeline that it no longer declares.
    pub(crate) async fn orphans(&self) -> Result<Vec<Op>, ProvisionError> {
        let spec = self.spec();
        let mut out = Vec::new();
        let declared: BTreeSet<&str> = crate::desired::functions(spec)
            .iter()
            .map(|(_, l)| l.name)
            .collect();
        let mut functions = self.lambda.list_functions().into_paginator().items().send();
        while let Some(f) = functions.next().await {
            let f = f.map_err(|e| call_err("lambda functions", "list", e))?;
            let (Some(name), Some(arn)) = (f.function_name(), f.function_arn()) else {
                continue;
            };
            if declared.contains(name) {
                continue;
            }
            let tags = self
                .lambda
                .list_tags()
                .resource(arn)
                .send()
                .await
                .map_err(|e| call_err(&format!("lambda function {name}"), "read the tags of", e))?;
            if self.owned(&tags.tags().cloned().unwrap_or_default()) {
                out.push(orphan(OrphanKind::Function, name));
            }
        }
        let declared: BTreeSet<&str> = spec.deliveries.iter().map(|d| d.name).collect();
        let mut start: Option<String> = None;
        loop {
            let page = self
                .firehose
                .list_delivery_streams()
                .set_exclusive_start_delivery_stream_name(start.clone())
                .send()
                .await
                .map_err(|e| call_err("delivery streams", "list", e))?;
            for name in page.delivery_stream_names() {
                if !declared.contains(name.as_str()) && self.owned(&self.delivery_tags(name).await?)
                {
                    out.push(orphan(OrphanKind::DeliveryStream, name));
                }
            }
            match page.delivery_stream_names().last() {
                Some(last) if page.has_more_delivery_streams() => start = Some(last.clone()),
                _ => break,
            }
        }
        let declared: BTreeSet<&str> = spec.streams.iter().map(|s| s.name).collect();
        let mut streams = self.kinesis.list_streams().into_paginator().send();
        while let Some(page) = streams.next().await {
            let page = page.map_err(|e| call_err("kinesis streams", "list", e))?;
            for name in page.stream_names() {
                if !declared.contains(name.as_str()) && self.owned(&self.stream_tags(name).await?) {
                    out.push(orphan(OrphanKind::Stream, name));
                }
            }
        }
        let declared: BTreeSet<String> = crate::desired::roles(spec)
            .into_iter()
            .map(|r| r.name)
            .collect();
        let prefix = format!("kpipe-{}-", spec.name.to_lowercase());
        let mut roles = self.iam.list_roles().into_paginator().items().send();
        while let Some(role) = roles.next().await {
            let role = role.map_err(|e| call_err("iam roles", "list", e))?;
            let name = role.role_name();
            if !name.starts_with(&prefix) || declared.contains(name) {
                continue;
            }
            let tags = self
                .iam
                .list_role_tags()
                .role_name(name)
                .send()
                .await
                .map_err(|e| call_err(&format!("iam role {name}"), "read the tags of", e))?;
            let tags = tags
                .tags()
                .iter()
                .map(|t| (t.key().to_owned(), t.value().to_owned()))
                .collect();
            if self.owned(&tags) {
                out.push(orphan(OrphanKind::Role, name));
            }
        }
        Ok(out)
    }

    /// Deletes a left-over resource, or says why it stays.
    pub(crate) async fn delete_orphan(
        &self,
        o: &Orphan,
        report: &mut ApplyReport,
    ) -> Result<(), ProvisionError> {
        let allowed = match self.prune {
            Prune::Nothing => false,
            Prune::Resources => !o.kind.holds_data(),
            Prune::WithData => true,
        };
        if !allowed {
            let flag = if o.kind.holds_data() {
                "--prune --prune-data"
            } else {
                "--prune"
            };
            report.actions.push(format!(
                "kept {o}, no longer declared (rerun with {flag} to delete it)"
            ));
            return Ok(());
        }
        match o.kind {
            OrphanKind::Function => {
                let mappings = self
                    .lambda
                    .list_event_source_mappings()
                    .function_name(&o.name)
                    .send()
                    .await
                    .map_err(|e| call_err(&o.to_string(), "list the mappings of", e))?;
                for m in mappings.event_source_mappings() {
                    if let Some(uuid) = m.uuid() {
                        self.lambda
                            .delete_event_source_mapping()
                            .uuid(uuid)
                            .send()
                            .await
                            .map_err(|e| call_err(&o.to_string(), "delete a mapping of", e))?;
                    }
                }
                self.delete_function(&o.name).await?;
            }
            OrphanKind::DeliveryStream => {
                self.delete_delivery(&o.name).await?;
            }
            OrphanKind::Stream => {
                self.kinesis
                    .delete_stream()
                    .stream_name(&o.name)
                    .enforce_consumer_deletion(true)
                    .send()
                    .await
                    .map_err(|e| call_err(&o.to_string(), "delete", e))?;
            }
            OrphanKind::Role => {
                let policies = self
                    .iam
                    .list_role_policies()
                    .role_name(&o.name)
                    .send()
                    .await
                    .map_err(|e| call_err(&o.to_string(), "list the policies of", e))?;
                for policy in policies.policy_names() {
                    self.iam
                        .delete_role_policy()
                        .role_name(&o.name)
                        .policy_name(policy)
                        .send()
                        .await
                        .map_err(|e| call_err(&o.to_string(), "delete a policy of", e))?;
                }
                self.iam
                    .delete_role()
                    .role_name(&o.name)
                    .send()
                    .await
                    .map_err(|e| call_err(&o.to_string(), "delete", e))?;
            }
        }
        report
            .actions
            .push(format!("deleted {o} (no longer declared)"));
        Ok(())
    }
}

fn orphan(kind: OrphanKind, name: &str) -> Op {
    Op::Prune(Orphan {
        kind,
        name: name.to_owned(),
    })
}
