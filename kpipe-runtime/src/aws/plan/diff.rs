//! The diffs: the operations that take one resource from its current state to the desired
//! one, or `ReplaceDelivery` with the reason when AWS cannot change it in place.

use super::{DeliveryState, FunctionState, MappingState, Op, StreamState, TableState};

/// What must happen to one function: created with its code, its code uploaded when the zip
/// (or the architecture) differs, its configuration updated when that differs. An unchanged
/// function is left alone: nothing is uploaded.
pub fn diff_function(desired: &FunctionState, current: Option<&FunctionState>) -> Vec<Op> {
    let Some(cur) = current else {
        return vec![Op::CreateFunction(desired.clone())];
    };
    let mut ops = Vec::new();
    if cur.code_sha256 != desired.code_sha256 || cur.architecture != desired.architecture {
        ops.push(Op::UpdateFunctionCode {
            desired: desired.clone(),
        });
    }
    let mut changed = Vec::new();
    let mut note = |what: &str, a: String, b: String| {
        if a != b {
            changed.push(format!("{what} {a} -> {b}"));
        }
    };
    note(
        "memory",
        format!("{} MiB", cur.memory_mib),
        format!("{} MiB", desired.memory_mib),
    );
    note(
        "timeout",
        format!("{} s", cur.timeout_secs),
        format!("{} s", desired.timeout_secs),
    );
    note("role", cur.role.clone(), desired.role.clone());
    note("runtime", cur.runtime.clone(), desired.runtime.clone());
    note(
        "description",
        format!("{:?}", cur.description),
        format!("{:?}", desired.description),
    );
    if !changed.is_empty() {
        ops.push(Op::UpdateFunctionConfig {
            desired: desired.clone(),
            changed,
        });
    }
    ops
}

/// The shard counts UpdateShardCount must step through: each at most double and at least half
/// the previous (Kinesis API, UpdateShardCount: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html>).
pub fn shard_steps(from: u32, to: u32) -> Vec<u32> {
    let mut steps = Vec::new();
    let mut cur = from.max(1);
    while cur != to {
        cur = if to > cur {
            to.min(cur * 2)
        } else {
            to.max(cur.div_ceil(2))
        };
        steps.push(cur);
    }
    steps
}

/// What must happen to one mapping: `current` is `(uuid, state)` when it exists.
pub fn diff_mapping(desired: &MappingState, current: Option<(&str, &MappingState)>) -> Vec<Op> {
    let Some((uuid, cur)) = current else {
        return vec![Op::CreateMapping(desired.clone())];
    };
    let mut changed = Vec::new();
    let mut note = |what: &str, a: String, b: String| {
        if a != b {
            changed.push(format!("{what} {a} -> {b}"));
        }
    };
    note(
        "batch size",
        cur.batch_size.to_string(),
        desired.batch_size.to_string(),
    );
    note(
        "bisect on error",
        cur.bisect_on_error.to_string(),
        desired.bisect_on_error.to_string(),
    );
    note(
        "maximum retries",
        cur.maximum_retries.to_string(),
        desired.maximum_retries.to_string(),
    );
    note(
        "maximum record age",
        cur.maximum_record_age_secs.to_string(),
        desired.maximum_record_age_secs.to_string(),
    );
    note(
        "batch window",
        format!("{}s", cur.batch_window_secs),
        format!("{}s", desired.batch_window_secs),
    );
    note(
        "parallelization",
        cur.parallelization.to_string(),
        desired.parallelization.to_string(),
    );
    note(
        "tumbling window",
        cur.tumbling_window_secs
            .map_or("none".into(), |w| format!("{w}s")),
        desired
            .tumbling_window_secs
            .map_or("none".into(), |w| format!("{w}s")),
    );
    note(
        "on-failure destination",
        cur.on_failure.clone().unwrap_or_else(|| "none".into()),
        desired.on_failure.clone().unwrap_or_else(|| "none".into()),
    );
    note(
        "filters",
        format!("{:?}", cur.filters),
        format!("{:?}", desired.filters),
    );
    note(
        "partial batch responses",
        cur.report_item_failures.to_string(),
        desired.report_item_failures.to_string(),
    );
    if changed.is_empty() {
        Vec::new()
    } else {
        vec![Op::UpdateMapping {
            uuid: uuid.to_owned(),
            desired: desired.clone(),
            changed,
        }]
    }
}

/// What must happen to one stream.
pub fn diff_stream(desired: &StreamState, current: Option<&StreamState>) -> Vec<Op> {
    let Some(cur) = current else {
        return vec![Op::CreateStream(desired.clone())];
    };
    let mut ops = Vec::new();
    let name = desired.name.clone();
    match (cur.shards, desired.shards) {
        (Some(a), Some(b)) if a != b => ops.push(Op::UpdateShardCount {
            stream: name.clone(),
            from: a,
            steps: shard_steps(a, b),
        }),
        (Some(_), None) => ops.push(Op::UpdateStreamMode {
            stream: name.clone(),
            to_shards: None,
        }),
        (None, Some(b)) => ops.push(Op::UpdateStreamMode {
            stream: name.clone(),
            to_shards: Some(b),
        }),
        _ => {}
    }
    if cur.retention_hours != desired.retention_hours {
        ops.push(Op::SetRetention {
            stream: name.clone(),
            from: cur.retention_hours,
            to: desired.retention_hours,
        });
    }
    if cur.max_record_size_kib != desired.max_record_size_kib {
        ops.push(Op::SetMaxRecordSize {
            stream: name.clone(),
            from: cur.max_record_size_kib,
            to: desired.max_record_size_kib,
        });
    }
    if cur.kms_key != desired.kms_key {
        ops.push(Op::SetEncryption {
            stream: name,
            kms_key: desired.kms_key.clone(),
        });
    }
    ops
}

/// A Glue table: columns added or removed, and a column widened (`int` to `bigint`, `float`
/// to `double`) change it in place; any other change of a column's type replaces it, because
/// the Parquet or ORC files already written under it would not read as the new type (AWS Glue,
/// UpdateTable: <https://docs.aws.amazon.com/glue/latest/webapi/API_UpdateTable.html>; Amazon
/// Athena, Handle schema updates: <https://docs.aws.amazon.com/athena/latest/ug/handling-schema-updates-chapter.html>).
pub fn diff_table(desired: &TableState, current: Option<&TableState>) -> Vec<Op> {
    let Some(cur) = current else {
        return vec![Op::CreateTable(desired.clone())];
    };
    let mut changed = Vec::new();
    let mut incompatible = Vec::new();
    for (name, ty) in &desired.columns {
        match cur.columns.iter().find(|(n, _)| n == name) {
            None => changed.push(format!("+ column {name} {ty}")),
            Some((_, was)) if was == ty => {}
            Some((_, was)) if widens(was, ty) => {
                changed.push(format!("~ column {name} {was} -> {ty}"))
            }
            Some((_, was)) => incompatible.push(format!("column {name} {was} -> {ty}")),
        }
    }
    for (name, ty) in &cur.columns {
        if !desired.columns.iter().any(|(n, _)| n == name) {
            changed.push(format!("- column {name} {ty}"));
        }
    }
    if !incompatible.is_empty() {
        return vec![Op::ReplaceTable {
            desired: desired.clone(),
            reason: incompatible.join(", "),
        }];
    }
    let names = |t: &TableState| t.columns.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    if changed.is_empty() && names(cur) != names(desired) {
        changed.push("column order".to_owned());
    }
    if cur.location != desired.location {
        changed.push(format!("location {} -> {}", cur.location, desired.location));
    }
    if cur.format != desired.format {
        changed.push(format!("format {} -> {}", cur.format, desired.format));
    }
    if changed.is_empty() {
        Vec::new()
    } else {
        vec![Op::UpdateTable {
            desired: desired.clone(),
            changed,
        }]
    }
}

/// Whether Hive reads a column of type `from` as `to`.
fn widens(from: &str, to: &str) -> bool {
    const INTEGERS: [&str; 4] = ["tinyint", "smallint", "int", "bigint"];
    let rank = |t: &str| INTEGERS.iter().position(|i| *i == t);
    match (rank(from), rank(to)) {
        (Some(a), Some(b)) => a < b,
        _ => (from, to) == ("float", "double"),
    }
}

/// What must happen to one delivery stream.
pub fn diff_delivery(desired: &DeliveryState, current: Option<&DeliveryState>) -> Vec<Op> {
    let Some(cur) = current else {
        return vec![Op::CreateDelivery(desired.clone())];
    };
    // Amazon Data Firehose, Dynamic partitioning: https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html: dynamic partitioning can only be set at creation; a delivery stream's
    // source cannot change either.
    if cur.dynamic_partitioning != desired.dynamic_partitioning {
        let reason = if desired.dynamic_partitioning {
            "dynamic partitioning can only be enabled when a delivery stream is created"
        } else {
            "dynamic partitioning cannot be disabled"
        };
        return vec![Op::ReplaceDelivery {
            desired: desired.clone(),
            reason: reason.to_owned(),
        }];
    }
    // "If backup is enabled, you can't update the delivery stream to disable it" (Firehose
    // API, UpdateDestination: https://docs.aws.amazon.com/firehose/latest/APIReference/API_UpdateDestination.html).
    if cur.backup.is_some() && desired.backup.is_none() {
        return vec![Op::ReplaceDelivery {
            desired: desired.clone(),
            reason: "source record backup cannot be disabled".to_owned(),
        }];
    }
    if cur.source_stream != desired.source_stream {
        return vec![Op::ReplaceDelivery {
            desired: desired.clone(),
            reason: "the source of a delivery stream cannot change".to_owned(),
        }];
    }
    let mut changed = Vec::new();
    let mut note = |what: &str, a: String, b: String| {
        if a != b {
            changed.push(format!("{what} {a} -> {b}"));
        }
    };
    let show = |o: &Option<String>| {
        o.clone()
            .map_or("(default)".to_owned(), |v| format!("{v:?}"))
    };
    note("bucket", cur.bucket.clone(), desired.bucket.clone());
    note("prefix", show(&cur.prefix), show(&desired.prefix));
    note(
        "error prefix",
        show(&cur.error_prefix),
        show(&desired.error_prefix),
    );
    note(
        "buffer size",
        format!("{} MiB", cur.size_mib),
        format!("{} MiB", desired.size_mib),
    );
    note(
        "buffer interval",
        format!("{} s", cur.interval_secs),
        format!("{} s", desired.interval_secs),
    );
    note(
        "compression",
        cur.compression.clone(),
        desired.compression.clone(),
    );
    note(
        "file extension",
        show(&cur.file_extension),
        show(&desired.file_extension),
    );
    note("time zone", show(&cur.time_zone), show(&desired.time_zone));
    note("kms key", show(&cur.kms_key), show(&desired.kms_key));
    note(
        "error logging",
        show(&cur.error_log_group),
        show(&desired.error_log_group),
    );
    let backup = |b: &Option<crate::desired::BackupState>| match b {
        None => "none".to_owned(),
        Some(b) => format!(
            "s3://{}/{} ({} MiB or {} s, {}{})",
            b.bucket,
            b.prefix.as_deref().unwrap_or(""),
            b.size_mib,
            b.interval_secs,
            b.compression,
            b.kms_key
                .as_ref()
                .map_or(String::new(), |k| format!(", kms {k}"))
        ),
    };
    note(
        "source record backup",
        backup(&cur.backup),
        backup(&desired.backup),
    );
    let conversion = |c: &Option<crate::desired::ConversionState>| {
        c.as_ref().map_or("none".to_owned(), |c| format!("{c}"))
    };
    if cur.conversion != desired.conversion {
        changed.push(format!(
            "format conversion {} -> {}",
            conversion(&cur.conversion),
            conversion(&desired.conversion)
        ));
    }
    if cur.processors != desired.processors {
        changed.push("processors".to_owned());
    }
    let mut ops = Vec::new();
    if !changed.is_empty() {
        ops.push(Op::UpdateDelivery {
            desired: desired.clone(),
            changed,
        });
    }
    if cur.encryption != desired.encryption {
        ops.push(Op::SetDeliveryEncryption {
            delivery: desired.name.clone(),
            encryption: desired.encryption.clone(),
        });
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::plan::Plan;

    #[test]
    fn shard_steps_respect_the_factor_of_two() {
        assert_eq!(shard_steps(2, 5), vec![4, 5]);
        assert_eq!(shard_steps(5, 2), vec![3, 2]);
        assert_eq!(shard_steps(1, 8), vec![2, 4, 8]);
        assert_eq!(shard_steps(3, 3), Vec::<u32>::new());
        assert_eq!(shard_steps(100, 1), vec![50, 25, 13, 7, 4, 2, 1]);
    }

    fn stream(shards: Option<u32>, retention: u32) -> StreamState {
        StreamState {
            name: "s".into(),
            shards,
            retention_hours: retention,
            max_record_size_kib: 1024,
            kms_key: None,
        }
    }

    #[test]
    fn stream_diffs_are_classified() {
        assert_eq!(
            diff_stream(&stream(Some(2), 24), Some(&stream(Some(2), 24))),
            vec![]
        );
        assert!(matches!(
            diff_stream(&stream(Some(2), 24), None)[..],
            [Op::CreateStream(_)]
        ));
        let ops = diff_stream(&stream(Some(5), 48), Some(&stream(Some(2), 24)));
        assert_eq!(
            ops[0],
            Op::UpdateShardCount {
                stream: "s".into(),
                from: 2,
                steps: vec![4, 5]
            }
        );
        assert_eq!(
            ops[1],
            Op::SetRetention {
                stream: "s".into(),
                from: 24,
                to: 48
            }
        );
        // A declared maximum record size reaches a deployed stream (UpdateMaxRecordSize).
        let large = StreamState {
            max_record_size_kib: 4096,
            ..stream(Some(2), 24)
        };
        assert_eq!(
            diff_stream(&large, Some(&stream(Some(2), 24))),
            vec![Op::SetMaxRecordSize {
                stream: "s".into(),
                from: 1024,
                to: 4096
            }]
        );
        assert_eq!(
            diff_stream(&stream(None, 24), Some(&stream(Some(2), 24))),
            vec![Op::UpdateStreamMode {
                stream: "s".into(),
                to_shards: None
            }]
        );
    }

    fn delivery(dp: bool, size: u32) -> DeliveryState {
        DeliveryState {
            name: "d".into(),
            source_stream: Some("s".into()),
            bucket: "b".into(),
            prefix: None,
            error_prefix: None,
            size_mib: size,
            interval_secs: 300,
            compression: "UNCOMPRESSED".into(),
            dynamic_partitioning: dp,
            processors: vec![],
            file_extension: None,
            time_zone: None,
            error_log_group: None,
            kms_key: None,
            encryption: None,
            backup: None,
            conversion: None,
        }
    }

    fn table(columns: &[(&str, &str)]) -> TableState {
        TableState {
            database: "telemetry".into(),
            name: "lake".into(),
            columns: columns
                .iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
            location: "s3://acme-lake/".into(),
            format: "parquet".into(),
        }
    }

    #[test]
    fn table_columns_change_in_place_unless_a_type_changes_incompatibly() {
        let was = table(&[("site", "string"), ("count", "int"), ("gone", "double")]);
        assert_eq!(diff_table(&was, None), vec![Op::CreateTable(was.clone())]);
        assert!(diff_table(&was, Some(&was)).is_empty());
        let wider = table(&[("site", "string"), ("count", "bigint"), ("new", "boolean")]);
        let [Op::UpdateTable { changed, .. }] = &diff_table(&wider, Some(&was))[..] else {
            panic!("an update in place");
        };
        assert_eq!(
            changed,
            &[
                "~ column count int -> bigint",
                "+ column new boolean",
                "- column gone double"
            ]
        );
        let narrower = table(&[("site", "int"), ("count", "int"), ("gone", "double")]);
        let ops = diff_table(&narrower, Some(&was));
        let [Op::ReplaceTable { reason, .. }] = &ops[..] else {
            panic!("a replacement: {ops:?}");
        };
        assert_eq!(reason, "column site string -> int");
        assert!(ops[0].is_replacement());
    }

    #[test]
    fn backup_is_enabled_in_place_and_never_disabled() {
        let plain = delivery(false, 5);
        let mut backed = delivery(false, 5);
        backed.backup = Some(crate::desired::BackupState {
            bucket: "raw".into(),
            prefix: Some("source/".into()),
            error_prefix: None,
            size_mib: 5,
            interval_secs: 300,
            compression: "GZIP".into(),
            kms_key: None,
        });
        let ops = diff_delivery(&backed, Some(&plain));
        let [Op::UpdateDelivery { changed, .. }] = &ops[..] else {
            panic!("{ops:?}")
        };
        assert_eq!(
            changed,
            &["source record backup none -> s3://raw/source/ (5 MiB or 300 s, GZIP)".to_owned()]
        );
        let ops = diff_delivery(&plain, Some(&backed));
        assert!(
            matches!(&ops[..], [Op::ReplaceDelivery { reason, .. }] if reason == "source record backup cannot be disabled"),
            "{ops:?}"
        );
        assert_eq!(diff_delivery(&backed, Some(&backed)), vec![]);
    }

    #[test]
    fn delivery_diffs_are_classified() {
        assert_eq!(
            diff_delivery(&delivery(false, 5), Some(&delivery(false, 5))),
            vec![]
        );
        let ops = diff_delivery(&delivery(false, 64), Some(&delivery(false, 5)));
        assert!(
            matches!(&ops[..], [Op::UpdateDelivery { changed, .. }] if changed == &["buffer size 5 MiB -> 64 MiB"])
        );
        let ops = diff_delivery(&delivery(true, 64), Some(&delivery(false, 64)));
        assert!(ops[0].is_replacement());
        let plan = Plan { ops };
        assert!(plan.to_string().contains(
            "-/+ firehose delivery stream d (replace: dynamic partitioning can only be enabled"
        ));
    }

    fn mapping(batch: u32, retries: i64) -> MappingState {
        MappingState {
            consumer: "alerts".into(),
            function: "p-alerts".into(),
            stream: "s".into(),
            starting_position: "LATEST".into(),
            starting_position_timestamp: None,
            batch_size: batch,
            bisect_on_error: false,
            maximum_retries: retries,
            maximum_record_age_secs: -1,
            batch_window_secs: 0,
            parallelization: 1,
            report_item_failures: true,
            tumbling_window_secs: None,
            on_failure: None,
            filters: Vec::new(),
        }
    }

    #[test]
    fn delivery_encryption_starts_and_stops_in_place() {
        let mut want = delivery(false, 5);
        want.encryption = Some(crate::desired::AWS_OWNED_CMK.to_owned());
        let cur = delivery(false, 5);
        assert_eq!(
            diff_delivery(&want, Some(&cur)),
            vec![Op::SetDeliveryEncryption {
                delivery: "d".into(),
                encryption: Some("AWS_OWNED_CMK".into())
            }]
        );
        assert_eq!(
            diff_delivery(&cur, Some(&want)),
            vec![Op::SetDeliveryEncryption {
                delivery: "d".into(),
                encryption: None
            }]
        );
        assert_eq!(diff_delivery(&want, Some(&want)), vec![]);
    }

    #[test]
    fn mapping_diffs_create_and_update_in_place() {
        let want = mapping(500, 2);
        assert_eq!(
            diff_mapping(&want, None),
            vec![Op::CreateMapping(want.clone())]
        );
        assert_eq!(diff_mapping(&want, Some(("u-1", &want))), vec![]);
        let ops = diff_mapping(&want, Some(("u-1", &mapping(100, -1))));
        let [Op::UpdateMapping { uuid, changed, .. }] = &ops[..] else {
            panic!("{ops:?}")
        };
        assert_eq!(uuid, "u-1");
        assert_eq!(
            changed,
            &["batch size 100 -> 500", "maximum retries -1 -> 2"]
        );
        let plan = Plan { ops };
        assert!(!plan.is_empty());
        assert!(
            plan.to_string()
                .ends_with("Plan: 0 to create, 1 to update in place, 0 to replace.")
        );
    }

    fn function(sha: &str, memory: u32) -> FunctionState {
        FunctionState {
            stage: "enrich".into(),
            name: "p-enrich".into(),
            memory_mib: memory,
            timeout_secs: 60,
            architecture: "arm64".into(),
            role: "arn:aws:iam::1:role/r".into(),
            runtime: "provided.al2023".into(),
            description: "d".into(),
            code_sha256: sha.into(),
        }
    }

    #[test]
    fn function_diffs_upload_only_changed_code() {
        let want = function("abc", 256);
        assert_eq!(
            diff_function(&want, None),
            vec![Op::CreateFunction(want.clone())]
        );
        assert_eq!(
            diff_function(&want, Some(&want)),
            vec![],
            "nothing uploaded"
        );
        let code = diff_function(&want, Some(&function("old", 256)));
        assert_eq!(
            code,
            vec![Op::UpdateFunctionCode {
                desired: want.clone()
            }]
        );
        let config = diff_function(&want, Some(&function("abc", 128)));
        let [Op::UpdateFunctionConfig { changed, .. }] = &config[..] else {
            panic!("{config:?}")
        };
        assert_eq!(changed, &["memory 128 MiB -> 256 MiB"]);
        let mut x86 = want.clone();
        x86.architecture = "x86_64".into();
        assert_eq!(
            diff_function(&want, Some(&x86)),
            vec![Op::UpdateFunctionCode {
                desired: want.clone()
            }],
            "the architecture goes with the code"
        );
        let plan = Plan {
            ops: diff_function(&want, None),
        };
        assert!(
            plan.to_string().contains(
                "+ lambda function p-enrich (provided.al2023, 256 MiB, 60 s, arm64, code abc)"
            ),
            "{plan}"
        );
    }
}
