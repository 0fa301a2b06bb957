//! Provisioning against moto_server (`moto[server]` from PyPI, installed by scripts/test),
//! started by each test on a free loopback port and stopped when the test ends. State is
//! checked with the SDK's Describe calls, not with kpipe's own bookkeeping.

use aws_sdk_firehose::types::DeliveryStreamStatus;
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
            lambda: { name: "watched-watcher" },
        }
    }
}

/// Deploys a function the way the template or `cargo lambda deploy` would (kpipe does not
/// deploy Lambda code): a role and a function with a placeholder package.
async fn deploy_function(config: &aws_config::SdkConfig, name: &str) {
    let iam = aws_sdk_iam::Client::new(config);
    let role = iam
        .create_role()
        .role_name(format!("{name}-role"))
        .assume_role_policy_document(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
        )
        .send()
        .await
        .unwrap();
    let zip = {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        w.start_file("bootstrap", zip::write::SimpleFileOptions::default())
            .unwrap();
        std::io::Write::write_all(&mut w, b"#!/bin/sh\n").unwrap();
        w.finish().unwrap();
        buf.into_inner()
    };
    aws_sdk_lambda::Client::new(config)
        .create_function()
        .function_name(name)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(role.role().unwrap().arn())
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .send()
        .await
        .unwrap();
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
async fn consumer_mappings_wait_for_their_function_then_are_created_updated_and_destroyed() {
    let moto = Moto::start();
    let config = moto.config().await;
    let aws = Aws::<Watched>::new(&config);

    // The function is not deployed yet: the mapping waits, apply says so and creates the rest.
    let plan = aws.plan().await.unwrap();
    assert!(
        plan.ops
            .iter()
            .any(|o| matches!(o, Op::AwaitFunction(m) if m.function == "watched-watcher")),
        "{plan}"
    );
    let applied = aws.apply(false).await.unwrap().to_string();
    assert!(
        applied.contains("skipped lambda event source mapping events -> watched-watcher: function watched-watcher is not deployed"),
        "{applied}"
    );

    deploy_function(&config, "watched-watcher").await;
    let plan = aws.plan().await.unwrap();
    assert!(
        plan.to_string().contains(
            "+ lambda event source mapping events -> watched-watcher (consumer watcher, TRIM_HORIZON, batches of 200)"
        ),
        "{plan}"
    );
    aws.apply(false).await.unwrap();
    assert_eq!(
        mappings(&config, "watched-watcher").await,
        [(200, 3, false)]
    );
    assert!(aws.plan().await.unwrap().is_empty());

    // Changed settings are updated in place.
    let more = Aws::<WatchedMore>::new(&config);
    let plan = more.plan().await.unwrap();
    assert!(
        plan.to_string().contains(
            "~ lambda event source mapping events -> watched-watcher: batch size 200 -> 500, bisect on error false -> true"
        ),
        "{plan}"
    );
    more.apply(false).await.unwrap();
    assert_eq!(mappings(&config, "watched-watcher").await, [(500, 3, true)]);
    assert!(more.plan().await.unwrap().is_empty());

    // Destroy removes the mapping (the function, which kpipe did not deploy, stays).
    let destroyed = more.destroy().await.unwrap().to_string();
    assert!(
        destroyed.contains("deleted lambda event source mapping events -> watched-watcher"),
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
    let report = aws.destroy().await.unwrap();
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
    let again = aws.destroy().await.unwrap();
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
    use kpipe_runtime::engine::kinesis::{
        CheckpointStore, FileCheckpoints, KinesisReader, StartAt,
    };
    use kpipe_runtime::engine::object_store::{ObjectStore, ObjectStoreExt, memory::InMemory};
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
