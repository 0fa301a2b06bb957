//! The service rules that can be known at compile time, one `check_*` function each.
//! Every rule cites the AWS documentation page the limit comes from and shows a bad input with the error it gets.

use crate::diagnostic::Diagnostics;
use crate::model::*;
use crate::prefix::Part;
use crate::value::MIB;

/// Runs every rule over a lowered pipeline.
pub(crate) fn check(d: &mut Diagnostics, p: &Pipeline) {
    if let Some(region) = &p.region {
        check_region(d, region);
    }
    check_tags(d, &p.tags);
    for s in &p.streams {
        check_stream_name(d, &s.name);
        if let Some(Sp {
            value: Capacity::Provisioned { shards },
            ..
        }) = &s.capacity
        {
            check_shard_count(d, shards);
        }
        check_retention(d, &s.retention_hours);
        check_max_record_size(d, &s.max_record_kib);
        if let Some(key) = &s.kms_key {
            check_kms_key(d, key);
        }
        check_tags(d, &s.tags);
    }
    for t in &p.transforms {
        check_processor_buffer(d, &t.buffer);
        check_retries(d, &t.retries);
        check_lambda(d, &t.lambda);
        check_transform_timeout(d, &t.lambda);
    }
    for c in &p.consumers {
        check_consumer(d, c);
        check_lambda(d, &c.lambda);
        check_consumer_timeout(d, &c.lambda);
    }
    check_unique_function_names(d, p);
    for s in &p.destinations {
        check_bucket_name(d, &s.bucket);
        check_s3_buffer(d, &s.buffer);
        check_prefix_namespaces(d, s);
        check_error_prefix_required(d, s);
        check_partition_keys(d, s);
        check_prefix_length(d, s);
        check_zero_buffering_with_partitioning(d, s);
        if let Some(ext) = &s.file_extension {
            check_file_extension(d, ext);
        }
        if let Some(tz) = &s.time_zone {
            check_time_zone(d, tz);
        }
        if let Some(c) = &s.conversion {
            check_conversion_buffer(d, s);
            check_conversion_compression(d, s);
            check_glue_names(d, c);
        }
    }
    for (i, del) in p.deliveries.iter().enumerate() {
        check_delivery_name(d, &del.name);
        if let Some(arn) = &del.role_arn {
            check_role_arn(d, arn);
        }
        check_tags(d, &del.tags);
        check_lambda_keys_have_a_transform(d, p, del);
        check_delivery_encryption(d, del);
        check_backup(d, p, del);
        check_unique_aws_names(d, &p.deliveries[..i], del);
    }
    check_unique_stream_names(d, &p.streams);
    for (i, s) in p.streams.iter().enumerate() {
        check_firehose_record_size(d, p, i, s);
    }
}

fn in_range(
    d: &mut Diagnostics,
    v: &Sp<u64>,
    min: u64,
    max: u64,
    what: &str,
    unit: &str,
    source: &str,
) {
    if v.value < min || v.value > max {
        d.error(
            v.range,
            format!(
                "{what} must be between {min}{unit} and {max}{unit}, found {}{unit}",
                v.value
            ),
        )
        .note(format!("note: {source}"));
    }
}

fn aws_name(d: &mut Diagnostics, name: &Sp<String>, what: &str, max: usize, source: &str) {
    let n = name.value.chars().count();
    if n == 0 || n > max {
        d.error(
            name.range,
            format!(
                "{what} `{}` must be 1 to {max} characters long, found {n}",
                name.value
            ),
        )
        .note(format!("note: {source}"));
    }
    if let Some(c) = name
        .value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        d.error(
            name.range,
            format!("{what} `{}` contains `{c}`", name.value),
        )
        .note("note: allowed characters are `a-z`, `A-Z`, `0-9`, `_`, `.` and `-`")
        .note(format!("note: {source}"));
    }
}

// Kinesis stream names: 1-128 characters of `[a-zA-Z0-9_.-]` (Kinesis API, CreateStream: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_CreateStream.html).
//
//     stream readings: Reading { name: "sensor readings", ... }
//                                      ^^^^^^^^^^^^^^^^^ stream name `sensor readings` contains ` `
fn check_stream_name(d: &mut Diagnostics, name: &Sp<String>) {
    aws_name(
        d,
        name,
        "stream name",
        128,
        "Kinesis stream names are 1-128 characters of [a-zA-Z0-9_.-] (Kinesis API, CreateStream: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_CreateStream.html)",
    );
}

// Firehose delivery stream names: 1-64 characters of `[a-zA-Z0-9_.-]` (Firehose API, CreateDeliveryStream: https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html).
//
//     delivery d: readings -> lake { name: "a-name-that-goes-on-for-more-than-sixty-four-characters-in-total" }
//                                          ^ delivery stream name ... must be 1 to 64 characters long
fn check_delivery_name(d: &mut Diagnostics, name: &Sp<String>) {
    aws_name(
        d,
        name,
        "delivery stream name",
        64,
        "Firehose delivery stream names are 1-64 characters of [a-zA-Z0-9_.-] (Firehose API, CreateDeliveryStream: https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html)",
    );
}

// Two stages that would create the same Kinesis stream.
//
//     stream a: A { name: "events", ... }
//     stream b: B { name: "events", ... }
//                         ^^^^^^^^ duplicate stream name `events`
fn check_unique_stream_names(d: &mut Diagnostics, streams: &[Stream]) {
    for (i, s) in streams.iter().enumerate() {
        if let Some(first) = streams[..i].iter().find(|f| f.name.value == s.name.value) {
            d.error(
                s.name.range,
                format!("duplicate stream name `{}`", s.name.value),
            )
            .related(first.name.range, "first used here")
            .note("note: stream names are unique per account and region (Kinesis API, CreateStream: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_CreateStream.html)");
        }
    }
}

// Two deliveries that would create the same Firehose stream.
//
//     delivery a: s -> lake { name: "d" }
//     delivery b: s -> lake { name: "d" }
//                                  ^^^ duplicate delivery stream name `d`
fn check_unique_aws_names(d: &mut Diagnostics, before: &[Delivery], del: &Delivery) {
    if let Some(first) = before.iter().find(|f| f.name.value == del.name.value) {
        d.error(
            del.name.range,
            format!("duplicate delivery stream name `{}`", del.name.value),
        )
        .related(first.name.range, "first used here")
        .note("note: delivery stream names are unique per account and region (Firehose API, CreateDeliveryStream: https://docs.aws.amazon.com/firehose/latest/APIReference/API_CreateDeliveryStream.html)");
    }
}

// Provisioned shard count 1..=10000 (UpdateShardCount's per-stream ceiling, Kinesis API, UpdateShardCount: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html).
//
//     capacity: provisioned(shards: 0),
//                                   ^ shard count must be between 1 and 10000, found 0
fn check_shard_count(d: &mut Diagnostics, shards: &Sp<u64>) {
    in_range(
        d,
        shards,
        1,
        10_000,
        "shard count",
        "",
        "a provisioned stream has 1 to 10,000 shards (Kinesis API, UpdateShardCount: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html)",
    );
}

// Retention 24h..=8760h (Kinesis Data Streams, Change the data retention period: https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html).
//
//     retention: 12h,
//                ^^^ retention must be between 24h and 8760h, found 12h
fn check_retention(d: &mut Diagnostics, hours: &Sp<u64>) {
    in_range(
        d,
        hours,
        24,
        8760,
        "retention",
        "h",
        "Kinesis keeps records 24 hours to 365 days (Kinesis Data Streams, Change the data retention period: https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html)",
    );
}

// Maximum record size 1024..=10240 KiB (Kinesis Data Streams, Handle large records: https://docs.aws.amazon.com/streams/latest/dev/large-records.html; Kinesis Data Streams quotas and limits: https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html).
//
//     max_record_size: 20MiB,
//                      ^^^^^ maximum record size must be between 1024KiB and 10240KiB, found 20480KiB
fn check_max_record_size(d: &mut Diagnostics, kib: &Sp<u64>) {
    in_range(
        d,
        kib,
        1024,
        10_240,
        "maximum record size",
        "KiB",
        "MaxRecordSizeInKiB is 1024-10240 KiB (Kinesis Data Streams, Handle large records: https://docs.aws.amazon.com/streams/latest/dev/large-records.html; Kinesis Data Streams quotas and limits: https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html)",
    );
}

// A KMS key is a key id, an `alias/...` or a key/alias ARN (Kinesis API, StartStreamEncryption: https://docs.aws.amazon.com/kinesis/latest/APIReference/API_StartStreamEncryption.html).
//
//     encryption: kms(""),
//                     ^^ KMS key must not be empty
fn check_kms_key(d: &mut Diagnostics, key: &Sp<String>) {
    if key.value.trim().is_empty() {
        d.error(key.range, "KMS key must not be empty")
            .note("help: use `kms` for the AWS-managed key `alias/aws/kinesis`, or `kms(\"alias/my-key\")`");
    } else if key.value.chars().any(char::is_whitespace) {
        d.error(
            key.range,
            format!("KMS key `{}` contains whitespace", key.value),
        );
    }
}

// Lambda processor buffer 0.2-3 MB and 0-900 s (Amazon Data Firehose, Transform source data: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html).
//
//     buffer: 5MiB or 60s,
//             ^^^^ processor buffer size must be between 0.2 MiB and 3 MiB
fn check_processor_buffer(d: &mut Diagnostics, b: &Buffer) {
    const MIN: u64 = MIB / 5; // 0.2 MB
    if b.bytes.value < MIN || b.bytes.value > 3 * MIB {
        d.error(
            b.bytes.range,
            format!(
                "processor buffer size must be between 0.2 MiB (204.8 KiB: write `0.2MB`) and 3 MiB, found {}",
                human_size(b.bytes.value)
            ),
        )
        .note("note: Firehose's BufferSizeInMBs for a Lambda processor is 0.2-3 MB (Amazon Data Firehose, Transform source data: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html)");
    }
    in_range(
        d,
        &b.seconds,
        0,
        900,
        "processor buffer interval",
        "s",
        "BufferIntervalInSeconds is 0-900 s (Amazon Data Firehose, Transform source data: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html)",
    );
}

/// `5 MiB`, `100 KiB`, `1500 B`.
fn human_size(bytes: u64) -> String {
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

// Retries of a failed Lambda invocation. AWS's default is 3 (Amazon Data Firehose, Transform source data: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html); the API's
// upper bound is not documented, so kpipe caps it at 300, as retries
// beyond that only delay the error output.
//
//     retries: 1000,
//              ^^^^ retries must be between 0 and 300, found 1000
fn check_retries(d: &mut Diagnostics, retries: &Sp<u64>) {
    in_range(
        d,
        retries,
        0,
        300,
        "retries",
        "",
        "kpipe caps NumberOfRetries at 300; AWS does not document an upper bound",
    );
}

// Lambda function settings: name 1-64 of `[a-zA-Z0-9-_]`, memory 128-10240 MB (AWS Lambda
// CreateFunction API and quotas).
//
//     lambda: { memory: 64MiB },
//                       ^^^^^ Lambda memory must be between 128MiB and 10240MiB, found 64MiB
fn check_lambda(d: &mut Diagnostics, l: &Lambda) {
    let n = l.name.value.chars().count();
    if n == 0
        || n > 64
        || l.name
            .value
            .chars()
            .any(|c| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    {
        d.error(l.name.range, format!("Lambda function name `{}` is invalid", l.name.value))
            .note("note: function names are 1-64 characters of [a-zA-Z0-9-_] (AWS Lambda CreateFunction API)");
    }
    in_range(
        d,
        &l.memory_mib,
        128,
        10_240,
        "Lambda memory",
        "MiB",
        "Lambda functions have 128-10240 MB of memory (AWS Lambda quotas)",
    );
}

// A transform's timeout: at most what Firehose honours, 5 minutes (Amazon Data Firehose, Transform source data: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html).
//
//     lambda: { timeout: 10min },
//                        ^^^^^ Lambda timeout must be between 1s and 300s, found 600s
fn check_transform_timeout(d: &mut Diagnostics, l: &Lambda) {
    in_range(
        d,
        &l.timeout_secs,
        1,
        300,
        "Lambda timeout",
        "s",
        "Firehose honours a transform timeout of at most 5 minutes (Amazon Data Firehose, Transform source data: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html)",
    );
}

// A consumer's timeout: Lambda's own bound, 15 minutes (AWS Lambda quotas).
//
//     lambda: { timeout: 20min },
//                        ^^^^^ Lambda timeout must be between 1s and 900s, found 1200s
fn check_consumer_timeout(d: &mut Diagnostics, l: &Lambda) {
    in_range(
        d,
        &l.timeout_secs,
        1,
        900,
        "Lambda timeout",
        "s",
        "a Lambda function runs at most 15 minutes (AWS Lambda quotas)",
    );
}

// The event source mapping of a consumer, for a Kinesis source: batch size 1-10000, retries
// -1 (unlimited) or 0-10000, record age -1 (unlimited) or 60-604800 s, batching window
// 0-300 s, parallelization factor 1-10
// (https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html).
//
//     batch_size: 20000,
//                 ^^^^^ batch size must be between 1 and 10000, found 20000
fn check_consumer(d: &mut Diagnostics, c: &Consumer) {
    const SOURCE: &str = "Kinesis event source mappings take BatchSize 1-10000, MaximumRetryAttempts -1 (unlimited) or 0-10000, MaximumRecordAgeInSeconds -1 (unlimited) or 60-604800, MaximumBatchingWindowInSeconds 0-300 and ParallelizationFactor 1-10 (AWS Lambda, Lambda parameters for Kinesis event source mappings: https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-parameters.html)";
    in_range(d, &c.batch_size, 1, 10_000, "batch size", "", SOURCE);
    if let Some(r) = &c.maximum_retries {
        in_range(d, r, 0, 10_000, "maximum_retries", "", SOURCE);
    }
    if let Some(age) = &c.maximum_record_age_secs {
        in_range(d, age, 60, 604_800, "maximum_record_age", "s", SOURCE);
    }
    in_range(d, &c.batch_window_secs, 0, 300, "batch window", "s", SOURCE);
    in_range(d, &c.parallelization, 1, 10, "parallelization", "", SOURCE);
    if let Some(w) = &c.tumbling_window_secs {
        // TumblingWindowInSeconds 0-900; 0 would be no window, so kpipe asks for 1s or more.
        in_range(d, w, 1, 900, "tumbling_window", "s", SOURCE);
    }
    if let Some(dest) = &c.on_failure {
        check_on_failure(d, dest);
    }
    check_filters(d, &c.filters);
}

// An on-failure destination is an SQS queue, an SNS topic or an S3 bucket, by name or by an ARN
// of that service ("Retain discarded batch records for a Kinesis Data Streams event source in
// Lambda", https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html).
//
//     on_failure: sqs("arn:aws:sns:us-east-1:123456789012:alerts"),
//                     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ an `sqs` destination needs an SQS ARN
fn check_on_failure(d: &mut Diagnostics, dest: &Sp<OnFailure>) {
    let (service, target) = match &dest.value {
        OnFailure::Sqs(t) => ("sqs", t),
        OnFailure::Sns(t) => ("sns", t),
        OnFailure::S3(t) => ("s3", t),
    };
    if let Some(rest) = target.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        if parts.len() != 5 || parts[1] != service || parts[4].is_empty() {
            d.error(
                dest.range,
                format!(
                    "an `{service}` destination needs an {} ARN, found `{target}`",
                    service.to_uppercase()
                ),
            )
            .note(match service {
                "sqs" => "note: an SQS queue ARN reads `arn:aws:sqs:REGION:ACCOUNT:QUEUE`",
                "sns" => "note: an SNS topic ARN reads `arn:aws:sns:REGION:ACCOUNT:TOPIC`",
                _ => "note: an S3 bucket ARN reads `arn:aws:s3:::BUCKET`",
            });
        }
        return;
    }
    match service {
        "s3" => check_bucket_name(d, &Sp::new(target.clone(), dest.range)),
        _ => {
            // Queue names: 1-80 of letters, digits, `-` and `_` (SQS CreateQueue); topic
            // names: 1-256 of the same (SNS CreateTopic); `.fifo` ends a FIFO one.
            let max = if service == "sqs" { 80 } else { 256 };
            let base = target.strip_suffix(".fifo").unwrap_or(target);
            let ok = !target.is_empty()
                && target.len() <= max
                && base
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_');
            if !ok {
                let what = if service == "sqs" { "queue" } else { "topic" };
                d.error(
                    dest.range,
                    format!("`{target}` is not an {} {what} name", service.to_uppercase()),
                )
                .note(format!(
                    "note: a {what} name is 1 to {max} letters, digits, `-` and `_` (`.fifo` at the end for a FIFO {what}); in another account or region, write its ARN"
                ));
            }
        }
    }
}

// Lambda event filtering on a Kinesis source: at most 5 filters, each a JSON object whose only
// key is `data` ("Using event filtering with a Kinesis event source",
// https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis-filtering.html; "Control which
// events Lambda sends to your function",
// https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html), a pattern
// of at most 4096 characters (Lambda API, Filter:
// https://docs.aws.amazon.com/lambda/latest/api/API_Filter.html). The local engine matches
// with quamina, so a pattern it cannot run is refused here rather than at run time.
fn check_filters(d: &mut Diagnostics, filters: &[Sp<String>]) {
    const PAGE: &str = "note: Kinesis event source mappings filter on the record's `data` only (AWS Lambda, Using event filtering with a Kinesis event source: https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis-filtering.html)";
    if filters.len() > 5 {
        d.error(
            filters[5].range,
            format!("an event source mapping takes at most 5 filters, found {}", filters.len()),
        )
        .note("note: a record reaches the function when any one filter matches it (AWS Lambda, Control which events Lambda sends to your function: https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html)");
    }
    for f in filters {
        if f.value.chars().count() > 4096 {
            d.error(
                f.range,
                format!(
                    "a filter pattern is at most 4096 characters, found {}",
                    f.value.chars().count()
                ),
            );
            continue;
        }
        let json: serde_json::Value = match serde_json::from_str(&f.value) {
            Ok(v) => v,
            Err(e) => {
                d.error(f.range, format!("this filter pattern is not JSON: {e}"));
                continue;
            }
        };
        let Some(object) = json.as_object() else {
            d.error(
                f.range,
                "a filter pattern is a JSON object: `{\"data\": {\"kind\": [\"alert\"]}}`",
            );
            continue;
        };
        if let Some(key) = object.keys().find(|k| *k != "data") {
            let e = d.error(
                f.range,
                format!("a Kinesis filter pattern has only the `data` key, found `{key}`"),
            );
            if key == "$or" {
                e.note("help: declare each alternative as a filter of its own: a record passes when any filter matches");
            } else {
                e.note(PAGE);
            }
            continue;
        }
        let mut q = quamina::Quamina::<usize>::new();
        if let Err(e) = q.add_pattern(0, &f.value) {
            let message = match e {
                quamina::QuaminaError::InvalidPattern(m) => m.replace('\n', "."),
                other => other.to_string(),
            };
            d.error(f.range, format!("invalid filter pattern: {message}"))
                .note("note: a pattern's values are arrays of values or of rules: `{\"prefix\": ..}`, `{\"suffix\": ..}`, `{\"numeric\": [\">\", 0]}`, `{\"exists\": true}`, `{\"anything-but\": [..]}`, `{\"equals-ignore-case\": ..}` (AWS Lambda, Control which events Lambda sends to your function: https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html)");
        }
    }
}

// Lambda function names are unique per account and region: two stages of one pipeline cannot
// share one (AWS Lambda CreateFunction API).
//
//     consumer alerts: readings -> crate::alert { lambda: { name: "telemetry-enrich" } }
//                                                                ^^^^^^^^^^^^^^^^^^ ...
fn check_unique_function_names(d: &mut Diagnostics, p: &Pipeline) {
    let mut seen: Vec<&Sp<String>> = Vec::new();
    let names = p
        .transforms
        .iter()
        .map(|t| &t.lambda.name)
        .chain(p.consumers.iter().map(|c| &c.lambda.name));
    for name in names {
        if let Some(first) = seen.iter().find(|s| s.value == name.value) {
            d.error(
                name.range,
                format!("Lambda function name `{}` is used twice", name.value),
            )
            .related(first.range, "first used here");
        } else {
            seen.push(name);
        }
    }
}

// S3 bucket naming rules (general purpose buckets):
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
//
//     bucket: "Acme_Telemetry",
//             ^^^^^^^^^^^^^^^^ bucket name `Acme_Telemetry` contains `A`
fn check_bucket_name(d: &mut Diagnostics, b: &Sp<String>) {
    let name = &b.value;
    let note = "note: S3 bucket names are 3-63 lowercase letters, digits, `.` and `-`, start and end with a letter or digit (S3 general purpose bucket naming rules)";
    let n = name.chars().count();
    if n == 0 {
        // Already reported as missing or not a string.
        return;
    }
    if !(3..=63).contains(&n) {
        d.error(
            b.range,
            format!("bucket name `{name}` must be 3 to 63 characters long, found {n}"),
        )
        .note(note);
        return;
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        d.error(b.range, format!("bucket name `{name}` contains `{c}`"))
            .note(note);
        return;
    }
    let first = name.chars().next().unwrap_or('a');
    let last = name.chars().last().unwrap_or('a');
    if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() {
        d.error(
            b.range,
            format!("bucket name `{name}` must start and end with a letter or digit"),
        )
        .note(note);
    } else if name.contains("..") {
        d.error(
            b.range,
            format!("bucket name `{name}` contains two adjacent periods"),
        )
        .note(note);
    } else if name.parse::<std::net::Ipv4Addr>().is_ok() {
        d.error(
            b.range,
            format!("bucket name `{name}` is formatted as an IP address"),
        )
        .note(note);
    } else if let Some(p) = ["xn--", "sthree-", "amzn-s3-demo-"]
        .iter()
        .find(|p| name.starts_with(**p))
    {
        d.error(b.range, format!("bucket names must not start with `{p}`"))
            .note(note);
    } else if let Some(s) = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"]
        .iter()
        .find(|s| name.ends_with(**s))
    {
        d.error(b.range, format!("bucket names must not end with `{s}`"))
            .note(note);
    }
}

// S3 buffering hints 1-128 MiB and 0-900 s, in whole MiB (Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html).
//
//     buffer: 256MiB or 300s,
//             ^^^^^^ S3 buffer size must be between 1MiB and 128MiB, found 256MiB
fn check_s3_buffer(d: &mut Diagnostics, b: &Buffer) {
    if !b.bytes.value.is_multiple_of(MIB) {
        d.error(b.bytes.range, "S3 buffer size is a whole number of MiB")
            .note("note: SizeInMBs is an integer (Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html)");
    } else {
        let mib = Sp::new(b.bytes.value / MIB, b.bytes.range);
        in_range(
            d,
            &mib,
            1,
            128,
            "S3 buffer size",
            "MiB",
            "SizeInMBs is 1-128 MiB (Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html)",
        );
    }
    in_range(
        d,
        &b.seconds,
        0,
        900,
        "S3 buffer interval",
        "s",
        "IntervalInSeconds is 0-900 s (Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html)",
    );
}

// Which namespaces may appear where (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html):
// `!{firehose:error-output-type}` only in the error prefix; `!{partitionKeyFrom...}` never
// in the error prefix, and in the prefix only with dynamic partitioning and for declared keys
// of the matching kind.
//
//     prefix: "data/!{firehose:error-output-type}/",
//             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^ `!{firehose:error-output-type}` is only allowed in `error_prefix`
fn check_prefix_namespaces(d: &mut Diagnostics, s: &S3) {
    if let Some(prefix) = &s.prefix {
        for part in &prefix.value.parts {
            match part {
                Part::ErrorOutputType => {
                    d.error(
                        prefix.range,
                        "`!{firehose:error-output-type}` is only allowed in `error_prefix`",
                    )
                    .note("note: Prefix cannot contain the error output type (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html)");
                }
                Part::KeyFromQuery(k) | Part::KeyFromLambda(k) => {
                    let from_query = matches!(part, Part::KeyFromQuery(_));
                    let ns = if from_query {
                        "partitionKeyFromQuery"
                    } else {
                        "partitionKeyFromLambda"
                    };
                    match s.partition_keys.iter().find(|pk| pk.ident == k) {
                        None if s.partition_keys.is_empty() => {
                            d.error(
                                prefix.range,
                                format!("`!{{{ns}:{k}}}` needs dynamic partitioning"),
                            )
                            .note(format!(
                                "help: declare the key: `partition_keys: {{ {k}: .{k} }}`"
                            ));
                        }
                        None => {
                            let declared = s
                                .partition_keys
                                .iter()
                                .map(|pk| pk.ident.to_string())
                                .collect::<Vec<_>>();
                            let e = d.error(
                                prefix.range,
                                format!("partition key `{k}` is not declared in `partition_keys`"),
                            );
                            match crate::diagnostic::did_you_mean(
                                k,
                                declared.iter().map(String::as_str),
                            ) {
                                Some(m) => e.note(format!("help: did you mean `{m}`?")),
                                None => {
                                    e.note(format!("note: declared keys: {}", declared.join(", ")))
                                }
                            };
                        }
                        Some(pk) if pk.is_query() != from_query => {
                            let (right, why) = if pk.is_query() {
                                (
                                    "partitionKeyFromQuery",
                                    "a field path is evaluated by Firehose (jq)",
                                )
                            } else {
                                (
                                    "partitionKeyFromLambda",
                                    "a closure runs in the transform's Lambda function",
                                )
                            };
                            d.error(
                                prefix.range,
                                format!("partition key `{k}` must be written `!{{{right}:{k}}}`"),
                            )
                            .related(pk.range, format!("`{k}` is declared here: {why}"));
                        }
                        Some(_) => {}
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(ep) = &s.error_prefix {
        if !ep.value.parts.contains(&Part::ErrorOutputType) {
            d.error(
                ep.range,
                "`error_prefix` must contain `!{firehose:error-output-type}`",
            )
            .note("note: Firehose requires it in every ErrorOutputPrefix (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html)")
            .note("help: for example `errors/!{firehose:error-output-type}/`");
        }
        if ep
            .value
            .parts
            .iter()
            .any(|p| matches!(p, Part::KeyFromQuery(_) | Part::KeyFromLambda(_)))
        {
            d.error(ep.range, "partition keys cannot be used in `error_prefix`")
                .note("note: records that fail never got their keys (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html)");
        }
    }
}

// An error prefix is required with dynamic partitioning (Amazon Data Firehose, Dynamic partitioning: https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html), and whenever the
// prefix uses expressions (ErrorOutputPrefix may be null only if Prefix has none, Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html).
//
//     s3 lake: E { bucket: "b", prefix: "d/!{timestamp:yyyy}/" }
//        ^^^^ `lake` needs an `error_prefix` because its prefix uses expressions
fn check_error_prefix_required(d: &mut Diagnostics, s: &S3) {
    if s.error_prefix.is_some() {
        return;
    }
    let why = if s.dynamic_partitioning() {
        Some((
            "it uses dynamic partitioning",
            "Amazon Data Firehose, Dynamic partitioning: https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html",
        ))
    } else if s.prefix.as_ref().is_some_and(|p| p.value.has_expressions()) {
        Some((
            "its prefix uses expressions",
            "Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html",
        ))
    } else {
        None
    };
    if let Some((why, page)) = why {
        d.error(
            s.ident.span(),
            format!(
                "s3 destination `{}` needs an `error_prefix` because {why}",
                s.ident
            ),
        )
        .note(format!("note: Firehose requires one in this case ({page})"))
        .note("help: add `error_prefix: \"errors/!{firehose:error-output-type}/\"`");
    }
}

// Declared partition keys must be used by the prefix, and there are at most 50 (jq keys,
// Amazon Data Firehose, Dynamic partitioning: https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html).
//
//     partition_keys: { site: .site, day: .day },
//                                    ^^^ partition key `day` is declared but not used in `prefix`
fn check_partition_keys(d: &mut Diagnostics, s: &S3) {
    if s.partition_keys.len() > 50 {
        d.error(
            s.partition_keys[50].ident.span(),
            "at most 50 partition keys are allowed",
        )
        .note("note: Firehose supports up to 50 keys (Amazon Data Firehose, Dynamic partitioning: https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html)");
    }
    let used: Vec<&str> = s
        .prefix
        .iter()
        .flat_map(|p| p.value.parts.iter())
        .filter_map(|p| match p {
            Part::KeyFromQuery(k) | Part::KeyFromLambda(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    for pk in &s.partition_keys {
        if !used.iter().any(|u| pk.ident == u) {
            let ns = if pk.is_query() {
                "partitionKeyFromQuery"
            } else {
                "partitionKeyFromLambda"
            };
            d.error(
                pk.ident.span(),
                format!(
                    "partition key `{}` is declared but not used in `prefix`",
                    pk.ident
                ),
            )
            .note(format!(
                "help: use it in the prefix as `!{{{ns}:{}}}`",
                pk.ident
            ));
        }
    }
}

// Each evaluated prefix is at most 512 characters (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html). Counted with every
// partition key as one character and the error output type at its longest.
//
//     prefix: "aaaa...600 characters...",
//             ^^^^^^^^^^^^^^^^^^^^^^^^^^ `prefix` evaluates to at least 600 characters; the limit is 512
fn check_prefix_length(d: &mut Diagnostics, s: &S3) {
    for (key, p) in [("prefix", &s.prefix), ("error_prefix", &s.error_prefix)] {
        if let Some(p) = p {
            let n = p.value.min_evaluated_len();
            if n > 512 {
                d.error(
                    p.range,
                    format!("`{key}` evaluates to at least {n} characters; the limit is 512"),
                )
                .note("note: each evaluated prefix is at most 512 characters (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html)");
            }
        }
    }
}

// Zero buffering is not available with dynamic partitioning (Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html).
//
//     buffer: 64MiB or 0s, partition_keys: { site: .site },
//                      ^^ a buffer interval of 0s is not available with dynamic partitioning
fn check_zero_buffering_with_partitioning(d: &mut Diagnostics, s: &S3) {
    if s.dynamic_partitioning() && s.buffer.seconds.value == 0 {
        d.error(
            s.buffer.seconds.range,
            "a buffer interval of 0s is not available with dynamic partitioning",
        )
        .note("note: zero buffering is not supported for dynamic partitioning (Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html)");
    }
}

// A closure key runs in the transform's Lambda (`partitionKeyFromLambda`), so every delivery
// into that destination needs a transform (Amazon Data Firehose, Dynamic partitioning: https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning.html; Amazon Data Firehose, Data transformation and status model: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html).
//
//     delivery raw: readings -> lake;
//                               ^^^^ s3 destination `lake` computes partition keys in a transform, but this delivery has none
fn check_lambda_keys_have_a_transform(d: &mut Diagnostics, p: &Pipeline, del: &Delivery) {
    let Some(route) = &del.route else { return };
    if route.transform.is_some() {
        return;
    }
    let sink = &p.destinations[route.destination.0];
    if let Some(pk) = sink.partition_keys.iter().find(|k| !k.is_query()) {
        d.error(
            route.destination.1.span(),
            format!("s3 destination `{}` computes partition key `{}` in a transform, but this delivery has none", sink.ident, pk.ident),
        )
        .related(pk.range, "closure keys run in the transform's Lambda function (`partitionKeyFromLambda`)")
        .note("help: add a transform to the route, or use a field path like `.site` (evaluated by Firehose)");
    }
}

// Firehose takes records of at most 1,000 KiB (Amazon Data Firehose Quota:
// https://docs.aws.amazon.com/firehose/latest/dev/limits.html), so a stream it reads keeps
// Kinesis's default maximum record size of 1 MiB: AWS's own pairing, and the largest a stream
// can be set below 10 MiB. Larger records are for consumers (Lambda reads up to 6 MB).
//
//     stream big: Reading { max_record_size: 4MiB, .. }
//                                            ^^^^ records of stream `big` may be up to 4096 KiB, but delivery `keep` reads it and ...
fn check_firehose_record_size(d: &mut Diagnostics, p: &Pipeline, i: usize, stream: &Stream) {
    let kib = &stream.max_record_kib;
    if kib.value <= 1024 {
        return;
    }
    let readers: Vec<String> = p
        .deliveries
        .iter()
        .filter(
            |del| matches!(&del.route, Some(Route { source: Source::Stream(s, _), .. }) if *s == i),
        )
        .map(|del| format!("`{}`", del.ident))
        .collect();
    if readers.is_empty() {
        return;
    }
    let (noun, verb) = if readers.len() == 1 {
        ("delivery", "reads")
    } else {
        ("deliveries", "read")
    };
    d.error(
        kib.range,
        format!(
            "records of stream `{}` may be up to {} KiB, but {noun} {} {verb} it and Firehose takes records of at most 1,000 KiB",
            stream.ident,
            kib.value,
            readers.join(", ")
        ),
    )
    .note("note: Amazon Data Firehose Quota: https://docs.aws.amazon.com/firehose/latest/dev/limits.html")
    .note("help: keep `max_record_size` at 1MiB for a stream Firehose reads, or read large records with a consumer");
}

// Server-side encryption of a delivery stream applies to Direct PUT: with a Kinesis stream as
// its source, Firehose keeps no data at rest and the stream's own encryption applies (Amazon
// Data Firehose, Data protection: https://docs.aws.amazon.com/firehose/latest/dev/encryption.html).
//
//     delivery d: readings -> lake { encryption: aws_owned }
//                                                ^^^^^^^^^ `encryption` applies to Direct PUT deliveries; ...
fn check_delivery_encryption(d: &mut Diagnostics, del: &Delivery) {
    if let (
        Some(e),
        Some(Route {
            source: Source::Stream(_, s),
            ..
        }),
    ) = (&del.encryption, &del.route)
        && e.value != DeliveryEncryption::None
    {
        d.error(
            e.range,
            format!("`encryption` applies to Direct PUT deliveries; `{}` reads stream `{s}`, whose own `encryption` protects the data", del.ident),
        )
        .note("note: Amazon Data Firehose, Data protection: https://docs.aws.amazon.com/firehose/latest/dev/encryption.html")
        .note(format!("help: remove it, and set `encryption` on stream `{s}`"));
    }
}

// Source record backup (S3BackupMode Enabled) keeps the records as they were before the
// transform, so a delivery without one has nothing to back up (the console offers it only with
// a transform or format conversion: Amazon Data Firehose, Configure backup settings,
// https://docs.aws.amazon.com/firehose/latest/dev/create-configure-backup.html). The backup is a
// plain S3 destination (S3DestinationConfiguration): no dynamic partitioning, file extension or
// time zone, and no zero buffering.
//
//     delivery d: readings -> lake { s3_backup: raw }
//                                               ^^^ `s3_backup` keeps the records before the transform; ...
fn check_backup(d: &mut Diagnostics, p: &Pipeline, del: &Delivery) {
    const PAGE: &str = "note: Amazon Data Firehose, Configure backup settings: https://docs.aws.amazon.com/firehose/latest/dev/create-configure-backup.html";
    let (Some((index, ident)), Some(route)) = (&del.backup, &del.route) else {
        return;
    };
    if route.transform.is_none() {
        d.error(
            ident.span(),
            format!("`s3_backup` keeps the source records as they were before the transform, and delivery `{}` has no transform", del.ident),
        )
        .note(PAGE)
        .note(format!("help: deliver to `{ident}` with a delivery of its own to keep a second copy"));
        return;
    }
    if *index == route.destination.0 {
        d.error(
            ident.span(),
            format!("`s3_backup` names the delivery's own destination `{ident}`"),
        )
        .note("help: declare another s3 destination (another bucket, or another prefix) for the source records");
        return;
    }
    let backup = &p.destinations[*index];
    let unsupported = |what: &str| {
        format!("s3 destination `{ident}` is a delivery's `s3_backup`, which takes no {what}")
    };
    if let Some(key) = backup.partition_keys.first() {
        d.error(ident.span(), unsupported("dynamic partitioning"))
            .related(
                key.ident.span(),
                format!("`{}` is declared here", key.ident),
            )
            .note(PAGE);
    }
    if let Some(ext) = &backup.file_extension {
        d.error(ident.span(), unsupported("`file_extension`"))
            .related(ext.range, "declared here")
            .note(PAGE);
    }
    if let Some(tz) = &backup.time_zone {
        d.error(ident.span(), unsupported("`time_zone`"))
            .related(tz.range, "declared here")
            .note(PAGE);
    }
    if let Some(c) = &backup.conversion {
        d.error(
            ident.span(),
            unsupported("`format` (the source records are kept as they came)"),
        )
        .related(c.range, "declared here")
        .note(PAGE);
    }
    if backup.buffer.seconds.value == 0 {
        d.error(ident.span(), unsupported("zero buffering (`buffer: 0s`)"))
            .related(backup.buffer.seconds.range, "declared here")
            .note("note: Amazon Data Firehose, Configure buffering hints: https://docs.aws.amazon.com/firehose/latest/dev/buffering-hints.html");
    }
}

// `.ext` with `0-9a-z!-_.*'()` only, at most 128 characters (Firehose FileExtension).
//
//     file_extension: "json",
//                     ^^^^^^ file extension `json` must start with `.`
fn check_file_extension(d: &mut Diagnostics, ext: &Sp<String>) {
    let v = &ext.value;
    let note = "note: FileExtension is `.` followed by 0-9a-z!-_.*'() and at most 128 characters (Firehose API)";
    if !v.starts_with('.') {
        d.error(
            ext.range,
            format!("file extension `{v}` must start with `.`"),
        )
        .note(note);
    } else if v.len() > 128 || v.len() < 2 {
        d.error(
            ext.range,
            format!("file extension `{v}` must be 2 to 128 characters long"),
        )
        .note(note);
    } else if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "!-_.*'()".contains(*c)))
    {
        d.error(ext.range, format!("file extension `{v}` contains `{c}`"))
            .note(note);
    }
}

// CustomTimeZone: an IANA name of `[a-zA-Z/_]`, at most 50 characters (Firehose API,
// ExtendedS3DestinationDescription.CustomTimeZone).
//
//     time_zone: "UTC+2",
//                ^^^^^^^ time zone `UTC+2` contains `+`
fn check_time_zone(d: &mut Diagnostics, tz: &Sp<String>) {
    let v = &tz.value;
    let note = "note: CustomTimeZone is an IANA name like `Asia/Tokyo` (letters, `/`, `_`; at most 50 characters)";
    if v.is_empty() || v.len() > 50 {
        d.error(
            tz.range,
            format!("time zone `{v}` must be 1 to 50 characters long"),
        )
        .note(note);
    } else if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphabetic() || *c == '/' || *c == '_'))
    {
        d.error(tz.range, format!("time zone `{v}` contains `{c}`"))
            .note(note);
    }
}

// Region names like `us-west-2`, `eu-central-1`, `us-gov-west-1`.
//
//     region: "us-west",
//             ^^^^^^^^^ `us-west` is not an AWS region name
fn check_region(d: &mut Diagnostics, region: &Sp<String>) {
    let parts: Vec<&str> = region.value.split('-').collect();
    let ok = parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty();
    if !ok {
        d.error(
            region.range,
            format!("`{}` is not an AWS region name", region.value),
        )
        .note("help: regions look like `us-west-2` or `eu-central-1`");
    }
}

// IAM role ARNs: `arn:...:iam::<12 digits>:role/<name>` (Firehose RoleARN pattern,
// IAM identifiers: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html).
//
//     role_arn: "firehose-role",
//               ^^^^^^^^^^^^^^^ `firehose-role` is not an IAM role ARN
fn check_role_arn(d: &mut Diagnostics, arn: &Sp<String>) {
    let v = &arn.value;
    let ok = v.starts_with("arn:")
        && v.split(':').nth(2) == Some("iam")
        && v.split(':')
            .nth(4)
            .is_some_and(|a| a.len() == 12 && a.chars().all(|c| c.is_ascii_digit()))
        && v.split(':')
            .nth(5)
            .is_some_and(|r| r.starts_with("role/") && r.len() > 5);
    if !ok {
        d.error(arn.range, format!("`{v}` is not an IAM role ARN"))
            .note("note: expected `arn:aws:iam::123456789012:role/name` (IAM identifiers: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_identifiers.html)");
    }
}

// Tags: keys 1-128 and values 0-256 characters, at most 50 per resource (AWS tagging rules,
// Kinesis AddTagsToStream and Firehose TagDeliveryStream).
//
//     tags: { team: "" , owner: "a very long value ..." },
fn check_tags(d: &mut Diagnostics, tags: &[Tag]) {
    if tags.len() > 50 {
        d.error(
            tags[50].key.range,
            "at most 50 tags are allowed on one resource",
        );
    }
    for t in tags {
        // Only the `aws:` prefix is reserved, in any case, for keys and values ("Tag naming
        // limits and requirements",
        // <https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html>), so
        // `aws_account` and `awsome` are fine. Keys and values hold letters, digits, spaces
        // and `_ . : / = + - @`; a key is 1 to 128 characters.
        const TAG_RULES: &str = "note: tag keys and values hold letters, digits, spaces and `_ . : / = + - @` (Tag naming limits and requirements: https://docs.aws.amazon.com/tag-editor/latest/userguide/tagging.html)";
        let allowed = |c: char| c.is_alphanumeric() || c == ' ' || "_.:/=+-@".contains(c);
        if t.key
            .value
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            d.error(
                t.key.range,
                "tag keys starting with `aws:` are reserved by AWS",
            );
        }
        if t.key.value.is_empty() {
            d.error(t.key.range, "a tag key cannot be empty");
        } else if let Some(c) = t.key.value.chars().find(|c| !allowed(*c)) {
            d.error(
                t.key.range,
                format!("tag key `{}` contains `{c}`", t.key.value),
            )
            .note(TAG_RULES);
        }
        if let Some(c) = t.value.value.chars().find(|c| !allowed(*c)) {
            d.error(
                t.value.range,
                format!("tag value `{}` contains `{c}`", t.value.value),
            )
            .note(TAG_RULES);
        }
        if t.value
            .value
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case("aws:"))
        {
            d.error(
                t.value.range,
                "tag values starting with `aws:` are reserved by AWS",
            );
        }
        if t.key.value.chars().count() > 128 {
            d.error(t.key.range, "tag keys are at most 128 characters");
        }
        if t.value.value.chars().count() > 256 {
            d.error(t.value.range, "tag values are at most 256 characters");
        }
    }
}

const CONVERSION_PAGE: &str = "Amazon Data Firehose, Convert input data format: https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html";

// Format conversion needs a buffer of at least 64 MiB (and then 128 MiB is the default)
// (Amazon Data Firehose, Convert input data format: https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html).
//
//     format: parquet, buffer: 5MiB or 60s,
//                              ^^^^ a Parquet or ORC destination buffers at least 64MiB
fn check_conversion_buffer(d: &mut Diagnostics, s: &S3) {
    let b = &s.buffer.bytes;
    if b.value < crate::lower::MIN_CONVERSION_BUFFER_BYTES && b.value.is_multiple_of(MIB) {
        d.error(
            b.range,
            format!(
                "a Parquet or ORC destination buffers at least 64MiB, found {}MiB",
                b.value / MIB
            ),
        )
        .note(format!("note: with record format conversion SizeInMBs is 64-128 ({CONVERSION_PAGE})"))
        .note("help: leave `buffer`'s size out for the default of 128MiB, or write `buffer: 64MiB or 300s`");
    }
}

// The destination's own compression stays UNCOMPRESSED with format conversion: the serializer
// compresses (Amazon Data Firehose, Convert input data format: https://docs.aws.amazon.com/firehose/latest/dev/record-format-conversion.html).
//
//     format: parquet, compression: gzip,
//                                   ^^^^ a Parquet or ORC destination takes no `compression` ...
fn check_conversion_compression(d: &mut Diagnostics, s: &S3) {
    if s.compression == Compression::None {
        return;
    }
    if let Some(range) = s.compression_range {
        d.error(
            range,
            "a Parquet or ORC destination takes no `compression`: the serializer compresses",
        )
        .note(format!("note: with record format conversion CompressionFormat must be UNCOMPRESSED ({CONVERSION_PAGE})"))
        .note("help: remove it, and choose the codec in the format: `format: parquet(compression: gzip)`");
    }
}

// Glue database and table names that Athena can query: lowercase letters, digits and `_`,
// at most 255 characters (Amazon Athena, Name databases, tables, and columns:
// https://docs.aws.amazon.com/athena/latest/ug/tables-databases-columns-names.html).
//
//     table: { database: "Sensor-Lake" },
//                        ^^^^^^^^^^^^^ Glue database name `Sensor-Lake` ...
fn check_glue_names(d: &mut Diagnostics, c: &Conversion) {
    for (what, name) in [("database", &c.database), ("table", &c.table)] {
        let Some(name) = name else { continue };
        let v = &name.value;
        let ok = !v.is_empty()
            && v.len() <= 255
            && v.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '_');
        if !ok {
            d.error(
                name.range,
                format!("Glue {what} name `{v}` must be 1-255 lowercase letters, digits and `_`"),
            )
            .note("note: Amazon Athena, Name databases, tables, and columns: https://docs.aws.amazon.com/athena/latest/ug/tables-databases-columns-names.html");
        }
    }
}
