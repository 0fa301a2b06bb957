//! What `--help` says about the pipeline: its doc comment, and a table of its stages.

use crate::spec::{Capacity, PipelineSpec, SourceSpec};
use std::fmt::Write as _;

/// The first line of `--help`: the pipeline's doc comment, or its name.
pub(super) fn about(spec: &PipelineSpec) -> String {
    if spec.doc.is_empty() {
        format!("The {} pipeline (kpipe)", spec.name)
    } else {
        spec.doc.to_owned()
    }
}

/// The stage table at the end of `--help`.
pub(super) fn stages(spec: &PipelineSpec) -> String {
    let mut rows: Vec<(&str, &str, String)> = Vec::new();
    for s in spec.streams {
        let capacity = match s.capacity {
            Capacity::Provisioned { shards: 1 } => "1 shard".to_owned(),
            Capacity::Provisioned { shards } => format!("{shards} shards"),
            Capacity::OnDemand => "on-demand".to_owned(),
        };
        rows.push((
            "stream",
            s.id,
            format!("Kinesis `{}` of {} ({capacity})", s.name, s.record_type),
        ));
    }
    for t in spec.transforms {
        rows.push((
            "transform",
            t.id,
            format!("{} -> {} by {}", t.input_type, t.output_type, t.function),
        ));
    }
    for d in spec.destinations {
        let prefix = d.prefix.map_or("", |p| p.raw);
        rows.push((
            "s3",
            d.id,
            format!("s3://{}/{prefix} ({})", d.bucket, d.record_type),
        ));
    }
    for d in spec.deliveries {
        let source = match d.source {
            SourceSpec::Stream(id) => id,
            SourceSpec::Direct => "direct",
        };
        let route = match d.transform {
            Some(t) => format!("{source} -> {t} -> {}", d.destination),
            None => format!("{source} -> {}", d.destination),
        };
        rows.push(("delivery", d.id, format!("Firehose `{}`: {route}", d.name)));
    }
    for c in spec.consumers {
        rows.push((
            "consumer",
            c.id,
            format!(
                "{} -> {} (Lambda `{}`, {})",
                c.stream,
                c.function,
                c.lambda.name,
                c.starting_position.aws_name()
            ),
        ));
    }
    let width = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let mut out = format!("Stages of {}:\n", spec.name);
    for (kind, id, what) in rows {
        let _ = writeln!(out, "  {kind:<9}  {id:<width$}  {what}");
    }
    out
}
