//! The plan: what must change for AWS to match the declaration. Pure data and pure functions:
//! the desired state comes from the spec, the current state from Describe calls, and the diff
//! is unit-tested without AWS.
//!
//! This file holds the plan's data ([`Op`], [`Plan`]) and how it prints; `diff.rs` computes
//! the operations, one function per kind of resource.

pub use crate::desired::{
    DeliveryState, MappingState, StreamState, TableState, desired_deliveries, desired_mappings,
    desired_streams, desired_tables,
};
use serde::Serialize;
use std::fmt;

mod diff;

pub use self::diff::{
    diff_delivery, diff_function, diff_mapping, diff_stream, diff_table, shard_steps,
};

/// A Lambda function as kpipe wants it or as AWS describes it: its configuration, and its
/// code by the SHA-256 of its zip (what `GetFunction` reports as `CodeSha256`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FunctionState {
    /// The transform's or consumer's id in the declaration.
    pub stage: String,
    /// The function's name.
    pub name: String,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// Timeout in seconds.
    pub timeout_secs: u32,
    /// `x86_64` or `arm64`.
    pub architecture: String,
    /// The execution role's ARN.
    pub role: String,
    /// `provided.al2023`.
    pub runtime: String,
    /// What the function is.
    pub description: String,
    /// Base64 SHA-256 of the code's zip.
    pub code_sha256: String,
}

/// A kind of resource `plan` finds left over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrphanKind {
    /// A Lambda function (with its event source mappings).
    Function,
    /// A Firehose delivery stream.
    DeliveryStream,
    /// A Kinesis stream: it holds data, so pruning it takes a flag of its own.
    Stream,
    /// An IAM role.
    Role,
}

impl OrphanKind {
    /// Whether deleting it deletes data.
    pub fn holds_data(self) -> bool {
        matches!(self, OrphanKind::Stream)
    }

    fn label(self) -> &'static str {
        match self {
            OrphanKind::Function => "lambda function",
            OrphanKind::DeliveryStream => "firehose delivery stream",
            OrphanKind::Stream => "kinesis stream",
            OrphanKind::Role => "iam role",
        }
    }
}

/// A resource kpipe created for the pipeline (it carries the pipeline's `kpipe:pipeline` tag)
/// that the declaration no longer has.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Orphan {
    /// What it is.
    pub kind: OrphanKind,
    /// Its name.
    pub name: String,
}

impl fmt::Display for Orphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.label(), self.name)
    }
}

/// One operation of a plan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// Create an S3 bucket kpipe owns.
    CreateBucket {
        /// Bucket name.
        bucket: String,
    },
    /// Create (or bring up to date the trust, policy and tags of) an IAM role kpipe owns: a
    /// delivery stream's or a function's.
    EnsureRole {
        /// Role name.
        role: String,
        /// What it is for.
        purpose: String,
    },
    /// Create a Lambda function with its code.
    CreateFunction(FunctionState),
    /// Upload new code (a changed zip, or another architecture).
    UpdateFunctionCode {
        /// The target.
        desired: FunctionState,
    },
    /// Change a function's configuration.
    UpdateFunctionConfig {
        /// The target.
        desired: FunctionState,
        /// What differs, for the rendering.
        changed: Vec<String>,
    },
    /// Create a Glue table (and its database when there is none) for a converting
    /// destination.
    CreateTable(TableState),
    /// Change a Glue table in place: columns added or removed, or widened, and its storage.
    UpdateTable {
        /// The target.
        desired: TableState,
        /// What differs (one entry per column), for the rendering.
        changed: Vec<String>,
    },
    /// Delete and recreate a Glue table: a column's type changed in a way existing files
    /// cannot be read as (the objects in S3 stay).
    ReplaceTable {
        /// The target.
        desired: TableState,
        /// The columns whose type changed.
        reason: String,
    },
    /// Create a stream.
    CreateStream(StreamState),
    /// Change a provisioned stream's shard count, in steps AWS accepts (each at most 2x and
    /// at least 0.5x the previous count, Kinesis API, UpdateShardCount: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html>).
    UpdateShardCount {
        /// Stream name.
        stream: String,
        /// Current open shards.
        from: u32,
        /// The counts to step through, ending at the target.
        steps: Vec<u32>,
    },
    /// Switch capacity mode (at most twice per 24 h, Kinesis Data Streams, Choose the data stream capacity mode: <https://docs.aws.amazon.com/streams/latest/dev/how-do-i-size-a-stream.html>).
    UpdateStreamMode {
        /// Stream name.
        stream: String,
        /// `Some(shards)` to go provisioned, `None` to go on-demand.
        to_shards: Option<u32>,
    },
    /// Change retention.
    SetRetention {
        /// Stream name.
        stream: String,
        /// Current hours.
        from: u32,
        /// Target hours.
        to: u32,
    },
    /// Change the maximum record size (UpdateMaxRecordSize, Kinesis Data Streams, Handle large
    /// records: <https://docs.aws.amazon.com/streams/latest/dev/large-records.html>).
    SetMaxRecordSize {
        /// Stream name.
        stream: String,
        /// Current KiB.
        from: u32,
        /// Target KiB.
        to: u32,
    },
    /// Start or stop server-side encryption.
    SetEncryption {
        /// Stream name.
        stream: String,
        /// The key, or `None` to stop encrypting.
        kms_key: Option<String>,
    },
    /// Create a delivery stream.
    CreateDelivery(DeliveryState),
    /// Start (with `AWS_OWNED_CMK` or a key ARN) or stop server-side encryption of a Direct
    /// PUT delivery stream (StartDeliveryStreamEncryption / StopDeliveryStreamEncryption).
    SetDeliveryEncryption {
        /// Delivery stream name.
        delivery: String,
        /// The key, or `None` to stop encrypting.
        encryption: Option<String>,
    },
    /// Update a delivery stream's destination in place (UpdateDestination).
    UpdateDelivery {
        /// The target settings.
        desired: DeliveryState,
        /// What differs, for the rendering.
        changed: Vec<String>,
    },
    /// Delete and recreate a delivery stream: what changed cannot be updated in place.
    ReplaceDelivery {
        /// The target settings.
        desired: DeliveryState,
        /// Why it cannot be updated in place.
        reason: String,
    },
    /// Delete a resource the declaration no longer has (with `apply --prune`; a stream also
    /// needs `--prune-data`).
    Prune(Orphan),
    /// Create a consumer's event source mapping.
    CreateMapping(MappingState),
    /// Update a consumer's event source mapping in place.
    UpdateMapping {
        /// The mapping's UUID.
        uuid: String,
        /// The target settings.
        desired: MappingState,
        /// What differs, for the rendering.
        changed: Vec<String>,
    },
}

impl Op {
    /// True for operations that destroy a resource.
    pub fn is_replacement(&self) -> bool {
        matches!(self, Op::ReplaceDelivery { .. } | Op::ReplaceTable { .. })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::CreateBucket { bucket } => write!(f, "  + s3 bucket {bucket}"),
            Op::EnsureRole { role, purpose } => {
                write!(f, "  + iam role {role} ({purpose}; policy kept in sync)")
            }
            Op::CreateFunction(x) => write!(
                f,
                "  + lambda function {} ({}, {} MiB, {} s, {}, code {})",
                x.name,
                x.runtime,
                x.memory_mib,
                x.timeout_secs,
                x.architecture,
                short(&x.code_sha256)
            ),
            Op::UpdateFunctionCode { desired } => write!(
                f,
                "  ~ lambda function {}: code -> {} ({})",
                desired.name,
                short(&desired.code_sha256),
                desired.architecture
            ),
            Op::UpdateFunctionConfig { desired, changed } => write!(
                f,
                "  ~ lambda function {}: {}",
                desired.name,
                changed.join(", ")
            ),
            Op::CreateTable(t) => write!(
                f,
                "  + glue table {}.{} ({}, {} columns, {})",
                t.database,
                t.name,
                t.format,
                t.columns.len(),
                t.location
            ),
            Op::UpdateTable { desired, changed } => write!(
                f,
                "  ~ glue table {}.{}: {}",
                desired.database,
                desired.name,
                changed.join(", ")
            ),
            Op::ReplaceTable { desired, reason } => write!(
                f,
                "-/+ glue table {}.{} (replace: {reason})",
                desired.database, desired.name
            ),
            Op::CreateStream(s) => write!(
                f,
                "  + kinesis stream {} ({}, {} h{}{})",
                s.name,
                s.shards
                    .map_or("on-demand".to_owned(), |n| format!("{n} shards")),
                s.retention_hours,
                match s.max_record_size_kib {
                    crate::desired::aws_defaults::MAX_RECORD_SIZE_KIB => String::new(),
                    kib => format!(", records up to {kib} KiB"),
                },
                s.kms_key
                    .as_ref()
                    .map(|k| format!(", KMS {k}"))
                    .unwrap_or_default()
            ),
            Op::UpdateShardCount {
                stream,
                from,
                steps,
            } => {
                let path: Vec<String> = std::iter::once(*from)
                    .chain(steps.iter().copied())
                    .map(|n| n.to_string())
                    .collect();
                write!(
                    f,
                    "  ~ kinesis stream {stream}: shards {}",
                    path.join(" -> ")
                )
            }
            Op::UpdateStreamMode { stream, to_shards } => write!(
                f,
                "  ~ kinesis stream {stream}: mode -> {} (allowed twice per 24 h)",
                to_shards.map_or("ON_DEMAND".to_owned(), |n| format!(
                    "PROVISIONED with {n} shards"
                ))
            ),
            Op::SetRetention { stream, from, to } => write!(
                f,
                "  ~ kinesis stream {stream}: retention {from} h -> {to} h"
            ),
            Op::SetMaxRecordSize { stream, from, to } => write!(
                f,
                "  ~ kinesis stream {stream}: maximum record size {from} KiB -> {to} KiB"
            ),
            Op::SetEncryption { stream, kms_key } => match kms_key {
                Some(k) => write!(f, "  ~ kinesis stream {stream}: encryption -> KMS {k}"),
                None => write!(f, "  ~ kinesis stream {stream}: encryption -> none"),
            },
            Op::SetDeliveryEncryption {
                delivery,
                encryption,
            } => match encryption {
                Some(k) => write!(
                    f,
                    "  ~ firehose delivery stream {delivery}: encryption -> {k}"
                ),
                None => write!(
                    f,
                    "  ~ firehose delivery stream {delivery}: encryption -> none"
                ),
            },
            Op::CreateDelivery(d) => write!(
                f,
                "  + firehose delivery stream {} -> s3://{}",
                d.name, d.bucket
            ),
            Op::UpdateDelivery { desired, changed } => {
                write!(
                    f,
                    "  ~ firehose delivery stream {}: {}",
                    desired.name,
                    changed.join(", ")
                )
            }
            Op::ReplaceDelivery { desired, reason } => {
                write!(
                    f,
                    "-/+ firehose delivery stream {} (replace: {reason})",
                    desired.name
                )
            }
            Op::Prune(o) if o.kind.holds_data() => write!(
                f,
                "  - {o} (no longer declared; holds data: `apply --prune --prune-data` deletes it)"
            ),
            Op::Prune(o) => write!(
                f,
                "  - {o} (no longer declared; `apply --prune` deletes it)"
            ),
            Op::CreateMapping(m) => write!(
                f,
                "  + lambda event source mapping {} -> {} (consumer {}, {}, batches of {})",
                m.stream, m.function, m.consumer, m.starting_position, m.batch_size
            ),
            Op::UpdateMapping {
                desired, changed, ..
            } => write!(
                f,
                "  ~ lambda event source mapping {} -> {}: {}",
                desired.stream,
                desired.function,
                changed.join(", ")
            ),
        }
    }
}

/// What `apply` would do.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The operations, in the order apply runs them.
    pub ops: Vec<Op>,
}

impl Plan {
    /// True when AWS already matches the declaration (role policies aside, which apply keeps in
    /// sync every time).
    pub fn is_empty(&self) -> bool {
        self.ops.iter().all(|o| matches!(o, Op::EnsureRole { .. }))
    }

    /// Whether the plan destroys and recreates something.
    pub fn has_replacements(&self) -> bool {
        self.ops.iter().any(Op::is_replacement)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let changes: Vec<&Op> = self
            .ops
            .iter()
            .filter(|o| !matches!(o, Op::EnsureRole { .. }))
            .collect();
        if changes.is_empty() {
            return f.write_str("No changes. AWS matches the declaration.");
        }
        for op in &changes {
            writeln!(f, "{op}")?;
        }
        let count = |p: fn(&Op) -> bool| changes.iter().filter(|o| p(o)).count();
        write!(
            f,
            "Plan: {} to create, {} to update in place, {} to replace",
            count(|o| matches!(
                o,
                Op::CreateBucket { .. }
                    | Op::CreateTable(_)
                    | Op::CreateFunction(_)
                    | Op::CreateStream(_)
                    | Op::CreateDelivery(_)
                    | Op::CreateMapping(_)
            )),
            count(|o| matches!(
                o,
                Op::UpdateShardCount { .. }
                    | Op::UpdateStreamMode { .. }
                    | Op::SetRetention { .. }
                    | Op::SetMaxRecordSize { .. }
                    | Op::SetEncryption { .. }
                    | Op::SetDeliveryEncryption { .. }
                    | Op::UpdateDelivery { .. }
                    | Op::UpdateTable { .. }
                    | Op::UpdateMapping { .. }
                    | Op::UpdateFunctionCode { .. }
                    | Op::UpdateFunctionConfig { .. }
            )),
            count(Op::is_replacement)
        )?;
        match count(|o| matches!(o, Op::Prune(_))) {
            0 => f.write_str("."),
            n => write!(f, ", {n} to destroy."),
        }
    }
}

/// The first characters of a code hash, enough to tell builds apart.
fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}
