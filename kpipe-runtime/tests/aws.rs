//! Provisioning against moto_server (`moto[server]` from PyPI, installed by scripts/test),
//! started by each test on a free loopback port and stopped when the test ends. State is
//! checked with the SDK's Describe calls, not with kpipe's own bookkeeping.

use aws_sdk_firehose::types::DeliveryStreamStatus;
use kpipe_runtime::aws::functions::CodeSource;
use kpipe_runtime::aws::moto::MotoServer;
use kpipe_runtime::aws::{Aws, ProvisionError, plan::Op};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Event {
    user: String,
    site: String,
}

struct Moto(MotoServer);

impl Moto {
    fn start() -> Moto {
        Moto(
            MotoServer::start()
                .expect("moto_server runs (scripts/test installs it: pip install 'moto[server]')"),
        )
    }

    async fn config(&self) -> aws_config::SdkConfig {
        self.0.sdk_config("us-west-2").await
    }
}

kpipe_runtime::pipeline! {
    pipeline Small {
        region: "us-west-2",
        stream events: Event { name: "events", capacity: provisioned(shards: 2), partition_key: user }
        s3 archive: Event { bucket: "acme-archive" }
        delivery to_archive: events -> archive { name: "to-archive" }
    }
    pipeline Grown {
        region: "us-west-2",
        stream events: Event { name: "events", capacity: provisioned(shards: 5), partition_key: user }
        s3 archive: Event { bucket: "acme-archive", buffer: 64MiB or 600s }
        delivery to_archive: events -> archive { name: "to-archive" }
    }
    pipeline Partitioned {
        region: "us-west-2",
        stream events: Event { name: "events", capacity: provisioned(shards: 2), partition_key: user }
        s3 archive: Event {
            bucket: "acme-archive",
            prefix: "site=!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            buffer: 64MiB or 300s,
            partition_keys: { site: .site },
        }
        delivery to_archive: events -> archive { name: "to-archive" }
    }
}

fn on_event(_e: Event) {}

kpipe_runtime::pipeline! {
    pipeline Watched {
        region: "us-west-2",
        stream events: Event { name: "events", capacity: provisioned(shards: 1), partition_key: user }
        consumer watcher: events -> crate::on_event {
            starting_position: trim_horizon,
            batch_size: 200,
            maximum_retries: 3,
        }
    }
    pipeline WatchedMore {
        region: "us-west-2",
        stream events: Event { name: "events", capacity: provisioned(shards: 1), partition_key: user }
        consumer watcher: events -> crate::on_event {
            starting_position: trim_horizon,
            batch_size: 500,
            bisect_on_error: true,
            maximum_retries: 3,
            on_failure: sqs("watcher-failed"),
            filter_criteria: [r#"{"data": {"user": [{"prefix": "a"}]}}"#],
            lambda: { name: "watched-watcher" },
        }
    }
}

/// A placeholder package for a function (moto stores the code; it does not run it).
fn placeholder_zip() -> CodeSource {
    let zip = kpipe_runtime::artifacts::zip_bootstrap(b"#!/bin/sh\n", "test").unwrap();
    CodeSource::ZipBytes(zip)
}

fn watched<P: kpipe_runtime::Pipeline>(config: &aws_config::SdkConfig) -> Aws<P> {
    Aws::<P>::new(config).lambda_code("watcher", placeholder_zip())
}

async fn mappings(config: &aws_config::SdkConfig, function: &str) -> Vec<(i32, i32, bool)> {
    aws_sdk_lambda::Client::new(config)
        .list_event_source_mappings()
        .function_name(function)
        .send()
        .await
        .unwrap()
        .event_source_mappings()
        .iter()
        .map(|m| {
            (
                m.batch_size().unwrap_or_default(),
                m.maximum_retry_attempts().unwrap_or_default(),
                m.bisect_batch_on_function_error().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_functions_and_mappings_are_created_updated_and_destroyed() {
    let moto = Moto::start();
    let config = moto.config().await;
    let aws = watched::<Watched>(&config);

    // The function is deployed with its code, then the mapping points at it.
    let plan = aws.plan().await.unwrap();
    assert!(
        plan.ops
            .iter()
            .any(|o| matches!(o, Op::CreateFunction(f) if f.name == "watched-watcher")),
        "{plan}"
    );
    assert!(
        plan.to_string().contains(
            "+ lambda event source mapping events -> watched-watcher (consumer watcher, TRIM_HORIZON, batches of 200)"
        ),
        "{plan}"
    );
    let applied = aws.apply(false).await.unwrap().to_string();
    assert!(
        applied.contains("created lambda function watched-watcher"),
        "{applied}"
    );
    assert_eq!(
        mappings(&config, "watched-watcher").await,
        [(200, 3, false)]
    );
    assert!(aws.plan().await.unwrap().is_empty());

    // Changed settings are updated in place.
    let more = watched::<WatchedMore>(&config);
    let plan = more.plan().await.unwrap();
    assert!(
        plan.to_string().contains(
            "~ lambda event source mapping events -> watched-watcher: batch size 200 -> 500, bisect on error false -> true"
        ),
        "{plan}"
    );
    assert!(
        plan.to_string().contains(
            "on-failure destination none -> arn:aws:sqs:us-west-2:123456789012:watcher-failed"
        ),
        "{plan}"
    );
    more.apply(false).await.unwrap();
    assert_eq!(mappings(&config, "watched-watcher").await, [(500, 3, true)]);
    let mapping = aws_sdk_lambda::Client::new(&config)
        .list_event_source_mappings()
        .function_name("watched-watcher")
        .send()
        .await
        .unwrap()
        .event_source_mappings()[0]
        .clone();
    assert_eq!(
        mapping
            .destination_config()
            .and_then(|d| d.on_failure())
            .and_then(|f| f.destination()),
        Some("arn:aws:sqs:us-west-2:123456789012:watcher-failed")
    );
    assert_eq!(
        mapping.filter_criteria().unwrap().filters()[0].pattern(),
        Some(r#"{"data": {"user": [{"prefix": "a"}]}}"#)
    );
    assert!(more.plan().await.unwrap().is_empty());

    // Another pipeline's destroy refuses what Watched created; Watched's removes the mapping
    // and the function kpipe deployed.
    let refused = more.destroy(false).await.unwrap_err();
    assert!(
        matches!(&refused, ProvisionError::NotOwned { resources, .. } if resources.len() == 2),
        "{refused}"
    );
    let destroyed = aws.destroy(false).await.unwrap().to_string();
    assert!(
        destroyed.contains("deleted lambda event source mapping events -> watched-watcher"),
        "{destroyed}"
    );
    assert!(
        destroyed.contains("deleted lambda function watched-watcher"),
        "{destroyed}"
    );
    assert_eq!(mappings(&config, "watched-watcher").await, []);
}

async fn describe_shards(config: &aws_config::SdkConfig, name: &str) -> Option<i32> {
    let k = aws_sdk_kinesis::Client::new(config);
    let out = k
        .describe_stream_summary()
        .stream_name(name)
        .send()
        .await
        .ok()?;
    Some(out.stream_description_summary()?.open_shard_count())
}

async fn describe_delivery(
    config: &aws_config::SdkConfig,
    name: &str,
) -> Option<aws_sdk_firehose::types::DeliveryStreamDescription> {
    let f = aws_sdk_firehose::Client::new(config);
    f.describe_delivery_stream()
        .delivery_stream_name(name)
        .send()
        .await
        .ok()?
        .delivery_stream_description()
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_from_nothing_then_a_second_apply_is_a_no_op() {
    let moto = Moto::start();
    let config = moto.config().await;
    let aws = Aws::<Small>::new(&config);
    let plan = aws.plan().await.unwrap();
    assert!(
        plan.ops
            .iter()
            .any(|o| matches!(o, Op::CreateStream(s) if s.name == "events")),
        "{plan}"
    );
    assert!(
        plan.ops
            .iter()
            .any(|o| matches!(o, Op::CreateDelivery(d) if d.name == "to-archive")),
        "{plan}"
    );
    assert!(
        plan.ops
            .iter()
            .any(|o| matches!(o, Op::CreateBucket { bucket } if bucket == "acme-archive")),
        "{plan}"
    );
    let report = aws.apply(false).await.unwrap();
    assert!(
        report.to_string().contains("created kinesis stream events"),
        "{report}"
    );

    assert_eq!(describe_shards(&config, "events").await, Some(2));
    let d = describe_delivery(&config, "to-archive")
        .await
        .expect("delivery stream exists");
    assert_eq!(*d.delivery_stream_status(), DeliveryStreamStatus::Active);
    let ext = d.destinations()[0]
        .extended_s3_destination_description()
        .unwrap();
    assert_eq!(ext.bucket_arn(), "arn:aws:s3:::acme-archive");
    // Delivery errors are logged to CloudWatch Logs, in a group and stream apply created.
    let logging = ext.cloud_watch_logging_options().unwrap();
    assert_eq!(
        (logging.enabled(), logging.log_group_name()),
        (Some(true), Some("/aws/kinesisfirehose/to-archive"))
    );
    let streams = aws_sdk_cloudwatchlogs::Client::new(&config)
        .describe_log_streams()
        .log_group_name("/aws/kinesisfirehose/to-archive")
        .send()
        .await
        .unwrap();
    assert_eq!(
        streams.log_streams()[0].log_stream_name(),
        Some("DestinationDelivery")
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    assert!(s3.head_bucket().bucket("acme-archive").send().await.is_ok());

    let again = aws.plan().await.unwrap();
    assert!(again.is_empty(), "no phantom diffs after apply:\n{again}");
    assert_eq!(
        again.to_string(),
        "No changes. AWS matches the declaration."
    );
    let second = aws.apply(false).await.unwrap();
    assert!(second.actions.is_empty(), "{second}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shard_count_and_buffering_changes_are_planned_and_applied() {
    let moto = Moto::start();
    let config = moto.config().await;
    Aws::<Small>::new(&config).apply(false).await.unwrap();
    let grown = Aws::<Grown>::new(&config);
    let plan = grown.plan().await.unwrap();
    assert!(
        plan.ops.contains(&Op::UpdateShardCount {
            stream: "events".into(),
            from: 2,
            steps: vec![4, 5]
        }),
        "{plan}"
    );
    let text = plan.to_string();
    assert!(
        text.contains("~ kinesis stream events: shards 2 -> 4 -> 5"),
        "{text}"
    );
    assert!(text.contains("buffer size 5 MiB -> 64 MiB"), "{text}");
    assert!(text.contains("buffer interval 300 s -> 600 s"), "{text}");
    grown.apply(false).await.unwrap();
    assert_eq!(describe_shards(&config, "events").await, Some(5));
    let d = describe_delivery(&config, "to-archive").await.unwrap();
    let hints = d.destinations()[0]
        .extended_s3_destination_description()
        .unwrap()
        .buffering_hints()
        .unwrap()
        .clone();
    assert_eq!(
        (hints.size_in_mbs(), hints.interval_in_seconds()),
        (Some(64), Some(600))
    );
    assert!(grown.plan().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_dynamic_partitioning_on_is_a_replacement_refused_unless_allowed() {
    let moto = Moto::start();
    let config = moto.config().await;
    Aws::<Small>::new(&config).apply(false).await.unwrap();
    let partitioned = Aws::<Partitioned>::new(&config);
    let refused = partitioned.apply(false).await.unwrap_err();
    assert!(
        matches!(refused, ProvisionError::ReplacementRefused(_)),
        "{refused}"
    );
    assert!(
        refused
            .to_string()
            .contains("dynamic partitioning can only be enabled"),
        "{refused}"
    );
    let before = describe_delivery(&config, "to-archive").await.unwrap();
    let dp = |d: &aws_sdk_firehose::types::DeliveryStreamDescription| {
        d.destinations()[0]
            .extended_s3_destination_description()
            .and_then(|e| e.dynamic_partitioning_configuration())
            .and_then(|c| c.enabled())
            .unwrap_or(false)
    };
    assert!(
        !dp(&before),
        "nothing changed when the replacement was refused"
    );
    let report = partitioned.apply(true).await.unwrap();
    assert!(
        report
            .to_string()
            .contains("replaced firehose delivery stream to-archive"),
        "{report}"
    );
    assert!(dp(&describe_delivery(&config, "to-archive").await.unwrap()));
    assert!(partitioned.plan().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_delivery_streams_streams_and_roles() {
    let moto = Moto::start();
    let config = moto.config().await;
    let aws = Aws::<Small>::new(&config);
    aws.apply(false).await.unwrap();
    let report = aws.destroy(false).await.unwrap();
    let text = report.to_string();
    assert!(
        text.contains("deleted firehose delivery stream to-archive"),
        "{text}"
    );
    assert!(text.contains("deleted kinesis stream events"), "{text}");
    assert!(text.contains("kept s3 bucket acme-archive"), "{text}");
    assert!(describe_delivery(&config, "to-archive").await.is_none());
    assert!(describe_shards(&config, "events").await.is_none());
    let iam = aws_sdk_iam::Client::new(&config);
    assert!(
        iam.get_role()
            .role_name("kpipe-small-to-archive")
            .send()
            .await
            .is_err(),
        "role deleted"
    );
    // Destroying again tolerates what is already gone.
    let again = aws.destroy(false).await.unwrap();
    assert!(!again.to_string().contains("deleted"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_one_clear_error() {
    // Nothing listens on a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-west-2"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "kpipe-tests",
        ))
        .load()
        .await;
    let err = Aws::<Small>::new(&config).plan().await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("could not identify the caller's account: "),
        "{text}"
    );
    assert!(
        text.contains("dispatch failure") || text.contains("onnection refused"),
        "{text}"
    );
}

/// A record in the stream over the declared `max_record_size` (the stream in AWS allows
/// larger ones; moto's PutRecord does not check sizes) goes to the error output with its shard
/// and sequence number; the rest are delivered and the checkpoints move past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_record_over_the_declared_limit_fails_alone_and_the_drain_goes_on() {
    use futures::StreamExt;
    use kpipe_runtime::engine::object_store::{ObjectStore, ObjectStoreExt, memory::InMemory};
    use kpipe_runtime::kinesis::{CheckpointStore, FileCheckpoints, KinesisReader, StartAt};
    use std::sync::Arc;

    let moto = Moto::start();
    let config = moto.config().await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    kinesis
        .create_stream()
        .stream_name("events")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let put = |user: String, data: Vec<u8>| {
        let kinesis = kinesis.clone();
        async move {
            kinesis
                .put_record()
                .stream_name("events")
                .partition_key(user)
                .data(aws_sdk_kinesis::primitives::Blob::new(data))
                .send()
                .await
                .unwrap()
        }
    };
    for i in 0..10 {
        put(
            format!("u-{i}"),
            format!(r#"{{"user":"u-{i}","site":"a"}}"#).into_bytes(),
        )
        .await;
    }
    let big = put("u-big".into(), vec![b' '; 1024 * 1024 + 10]).await;
    for i in 10..20 {
        put(
            format!("u-{i}"),
            format!(r#"{{"user":"u-{i}","site":"a"}}"#).into_bytes(),
        )
        .await;
    }

    let dir = std::env::temp_dir().join(format!("kpipe-over-limit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let checkpoints = FileCheckpoints::new(dir.join("checkpoints.json"));
    let store = Arc::new(InMemory::new());
    let engine = Small::local().store(store.clone()).start().unwrap();
    let read = KinesisReader::new(&config, Small::events().into())
        .drain_into(&engine, StartAt::TrimHorizon, &checkpoints)
        .await
        .expect("one bad record does not stop the drain");
    let report = engine.shutdown().await.unwrap();
    assert_eq!((read.records, read.rejected), (21, 1));
    let d = &report.deliveries[0];
    assert_eq!((d.received, d.delivered, d.failed), (21, 20, 1), "{report}");
    checkpoints.save(&read.checkpoints).unwrap();

    let mut docs = Vec::new();
    let mut list = store.list(None);
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        if meta.location.as_ref().contains("processing-failed") {
            let body = store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            docs.push(serde_json::from_slice::<serde_json::Value>(body.trim_ascii()).unwrap());
        }
    }
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["errorCode"], "Kinesis.RecordTooLarge");
    let message = docs[0]["errorMessage"].as_str().unwrap();
    assert!(
        message.contains(big.shard_id()) && message.contains(big.sequence_number()),
        "{message}"
    );

    // The checkpoints passed it: the next drain reads nothing.
    let engine = Small::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let again = KinesisReader::new(&config, Small::events().into())
        .drain_into(&engine, StartAt::TrimHorizon, &checkpoints)
        .await
        .unwrap();
    engine.shutdown().await.unwrap();
    assert_eq!(again.records, 0);
    std::fs::remove_dir_all(dir).unwrap();
}

fn enrich(e: Event) -> kpipe_runtime::Outcome<Event> {
    kpipe_runtime::Outcome::Ok(e)
}

kpipe_runtime::pipeline! {
    pipeline Secured {
        region: "us-west-2",
        stream events: Event {
            name: "secured-events",
            capacity: provisioned(shards: 1),
            partition_key: user,
            encryption: kms("arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
        }
        transform tidy: Event -> Event { function: crate::enrich }
        s3 archive: Event { bucket: "acme-secured" }
        s3 raw: Event { bucket: "acme-secured-raw", prefix: "source/", compression: gzip }
        delivery to_archive: events -> tidy -> archive { name: "secured-to-archive", s3_backup: raw }
        consumer watcher: events -> crate::on_event { starting_position: trim_horizon }
    }
}

/// Replaces every `Fn::Sub` of a template fragment with its value in `env`.
fn resolved(v: &serde_json::Value, env: &kpipe_runtime::desired::Env) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) if m.len() == 1 && m.contains_key("Fn::Sub") => {
            let text = m["Fn::Sub"].as_str().unwrap();
            serde_json::Value::String(kpipe_runtime::desired::Sub::new(text).resolve(env))
        }
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, x)| (k.clone(), resolved(x, env)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        serde_json::Value::Array(a) => a.iter().map(|x| resolved(x, env)).collect(),
        other => other.clone(),
    }
}

/// One model, two renderers: the trust and inline policies `apply` writes are the template's
/// with the references resolved, for a pipeline with a KMS-encrypted stream, a transform and a
/// consumer, and for a plain one. The applied delivery role may decrypt with exactly the
/// declared key, through Kinesis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_roles_are_the_templates_with_references_resolved() {
    let moto = Moto::start();
    let config = moto.config().await;
    async fn check<P: kpipe_runtime::Pipeline>(config: &aws_config::SdkConfig) {
        let aws = Aws::<P>::new(config)
            .lambda_code("tidy", placeholder_zip())
            .lambda_code("watcher", placeholder_zip());
        aws.apply(false).await.unwrap();
        let env = kpipe_runtime::desired::Env::new(P::SPEC, "us-west-2", "123456789012");
        let template = kpipe_runtime::cloudformation::template(P::SPEC);
        let roles = kpipe_runtime::desired::roles(P::SPEC);
        assert!(!roles.is_empty());
        for role in roles {
            let (policy, trust) = aws
                .role_documents(&role.name, role.policy_name)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("role {} exists", role.name));
            let props = &template["Resources"][&role.logical_id]["Properties"];
            assert_eq!(
                policy,
                resolved(&props["Policies"][0]["PolicyDocument"], &env),
                "{}",
                role.name
            );
            assert_eq!(
                trust,
                resolved(&props["AssumeRolePolicyDocument"], &env),
                "{}",
                role.name
            );
        }
    }
    check::<Secured>(&config).await;
    check::<Small>(&config).await;

    // The source record backup reached the delivery stream, and reads back as declared.
    let d = describe_delivery(&config, "secured-to-archive")
        .await
        .unwrap();
    let ext = d.destinations()[0]
        .extended_s3_destination_description()
        .unwrap();
    assert_eq!(
        ext.s3_backup_mode(),
        Some(&aws_sdk_firehose::types::S3BackupMode::Enabled)
    );
    let backup = ext.s3_backup_description().unwrap();
    assert_eq!(backup.bucket_arn(), "arn:aws:s3:::acme-secured-raw");
    assert_eq!(backup.prefix(), Some("source/"));
    let secured = Aws::<Secured>::new(&config)
        .lambda_code("tidy", placeholder_zip())
        .lambda_code("watcher", placeholder_zip());
    let plan = secured.plan().await.unwrap();
    assert!(plan.is_empty(), "{plan}");

    let aws = Aws::<Secured>::new(&config);
    let (policy, trust) = aws
        .role_documents("kpipe-secured-secured-to-archive", "delivery")
        .await
        .unwrap()
        .unwrap();
    let decrypt = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Action"] == "kms:Decrypt")
        .expect("the delivery role can decrypt the stream");
    assert_eq!(
        decrypt["Resource"],
        "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    );
    assert_eq!(
        decrypt["Condition"]["StringEquals"]["kms:ViaService"],
        "kinesis.us-west-2.amazonaws.com"
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        "123456789012"
    );
}

mod before {
    kpipe_runtime::pipeline! {
        pub(crate) pipeline Pruned {
            region: "us-west-2",
            stream events: super::Event { name: "pruned-events", capacity: provisioned(shards: 1), partition_key: user }
            stream old: super::Event { name: "pruned-old", capacity: provisioned(shards: 1), partition_key: user }
            consumer watcher: events -> crate::on_event { starting_position: trim_horizon }
        }
    }
}

mod after {
    kpipe_runtime::pipeline! {
        pub(crate) pipeline Pruned {
            region: "us-west-2",
            stream events: super::Event { name: "pruned-events", capacity: provisioned(shards: 1), partition_key: user }
        }
    }
}

/// A consumer and a stream removed from the declaration: `plan` lists what kpipe created for
/// them as `- destroy`; `apply` keeps them without `--prune`; `--prune` deletes the function
/// (its mapping too) and its role, and the stream, which holds data, only with
/// `--prune-data`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_stages_are_listed_then_pruned_only_when_asked() {
    use kpipe_runtime::aws::Prune;
    let moto = Moto::start();
    let config = moto.config().await;
    watched::<before::Pruned>(&config)
        .apply(false)
        .await
        .unwrap();
    let plan = Aws::<after::Pruned>::new(&config).plan().await.unwrap();
    let text = plan.to_string();
    for line in [
        "  - lambda function pruned-watcher (no longer declared; `apply --prune` deletes it)",
        "  - iam role kpipe-pruned-watcher-function (no longer declared; `apply --prune` deletes it)",
        "  - kinesis stream pruned-old (no longer declared; holds data: `apply --prune --prune-data` deletes it)",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    assert!(text.ends_with(", 3 to destroy."), "{text}");

    let kept = Aws::<after::Pruned>::new(&config)
        .apply(false)
        .await
        .unwrap()
        .to_string();
    assert!(
        kept.contains("kept lambda function pruned-watcher, no longer declared (rerun with --prune to delete it)"),
        "{kept}"
    );
    assert!(describe_shards(&config, "pruned-old").await.is_some());

    let pruned = Aws::<after::Pruned>::new(&config)
        .prune(Prune::Resources)
        .apply(false)
        .await
        .unwrap()
        .to_string();
    assert!(
        pruned.contains("deleted lambda function pruned-watcher (no longer declared)"),
        "{pruned}"
    );
    assert!(
        pruned.contains("deleted iam role kpipe-pruned-watcher-function"),
        "{pruned}"
    );
    assert!(
        pruned.contains("kept kinesis stream pruned-old"),
        "{pruned}"
    );
    assert_eq!(mappings(&config, "pruned-watcher").await, []);
    assert!(
        describe_shards(&config, "pruned-old").await.is_some(),
        "data is kept"
    );

    Aws::<after::Pruned>::new(&config)
        .prune(Prune::WithData)
        .apply(false)
        .await
        .unwrap();
    assert!(
        Aws::<after::Pruned>::new(&config)
            .plan()
            .await
            .unwrap()
            .is_empty()
    );
}

mod retagged {
    kpipe_runtime::pipeline! {
        pub(crate) pipeline Small {
            region: "us-west-2",
            tags: { team: "data-platform" },
            stream events: super::Event { name: "events", capacity: provisioned(shards: 2), partition_key: user }
            s3 archive: super::Event { bucket: "acme-archive" }
            delivery to_archive: events -> archive { name: "to-archive" }
        }
    }
}

/// A tag added to the declaration after the resources were made reaches them on the next
/// apply (only those kpipe created for the pipeline), and then apply is quiet again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_added_later_are_written_on_the_next_apply() {
    let moto = Moto::start();
    let config = moto.config().await;
    Aws::<Small>::new(&config).apply(false).await.unwrap();
    let applied = Aws::<retagged::Small>::new(&config)
        .apply(false)
        .await
        .unwrap()
        .to_string();
    assert!(
        applied.contains("tagged kinesis stream events: team=data-platform"),
        "{applied}"
    );
    assert!(
        applied.contains("tagged firehose delivery stream to-archive: team=data-platform"),
        "{applied}"
    );
    let tags = aws_sdk_kinesis::Client::new(&config)
        .list_tags_for_stream()
        .stream_name("events")
        .send()
        .await
        .unwrap();
    assert!(
        tags.tags()
            .iter()
            .any(|t| t.key() == "team" && t.value() == Some("data-platform"))
    );
    let again = Aws::<retagged::Small>::new(&config)
        .apply(false)
        .await
        .unwrap();
    assert!(again.actions.is_empty(), "{again}");
}
