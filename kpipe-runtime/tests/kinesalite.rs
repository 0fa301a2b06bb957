//! The Kinesis data path against kinesalite, a second Kinesis implementation (npm; started by
//! the harness on a loopback port): the producer packs, rejects and puts (plain and KPL
//! aggregated), and the Kinesis-sourced engine drains the stream through a delivery and
//! resumes from its checkpoints. kinesalite has no Firehose, S3 or IAM, so the stream is
//! created with the SDK and the objects go to an in-memory store.

use kpipe_runtime::aws::kinesalite::Kinesalite;
use kpipe_runtime::engine::object_store::memory::InMemory;
use kpipe_runtime::kinesis::{
    CheckpointStore, Checkpoints, FileCheckpoints, KinesisReader, StartAt,
};
use kpipe_runtime::kinesis::{KinesisProducer, RecordOutcome};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Event {
    user: String,
    n: u32,
}

kpipe_runtime::pipeline! {
    pipeline Resharded {
        region: "us-west-2",
        stream events: Event { name: "resharded", capacity: provisioned(shards: 1), partition_key: user }
        s3 archive: Event { bucket: "resharded-archive" }
        delivery to_archive: events -> archive;
    }
    pipeline Steady {
        region: "us-west-2",
        stream events: Event { name: "steady-events", capacity: provisioned(shards: 2), partition_key: user }
        s3 archive: Event { bucket: "steady-archive" }
        delivery to_archive: events -> archive;
    }
    pipeline Lite {
        region: "us-west-2",
        stream events: Event { name: "lite-events", capacity: provisioned(shards: 2), partition_key: user }
        s3 archive: Event { bucket: "lite-archive" }
        delivery to_archive: events -> archive;
    }
}

fn event(n: u32) -> Event {
    Event {
        user: format!("u-{}", n % 23),
        n,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_drain_on_kinesalite() {
    let lite = Kinesalite::start().expect("kinesalite runs (scripts/test installs it with npm)");
    let config = lite.sdk_config("us-west-2").await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    kinesis
        .create_stream()
        .stream_name("lite-events")
        .shard_count(2)
        .send()
        .await
        .unwrap();

    // Plain and aggregated puts, and one record over the limit rejected at put time.
    let plain: Vec<Event> = (0..600).map(event).collect();
    let producer = KinesisProducer::new(&config, Lite::events());
    let outcomes = producer.put_batch(&plain).await.unwrap();
    assert!(outcomes.iter().all(
        |o| matches!(o, RecordOutcome::Put { sequence_number, .. } if sequence_number.len() == 56)
    ));
    let aggregated: Vec<Event> = (600..1000).map(event).collect();
    let outcomes = producer
        .clone()
        .aggregate(true)
        .put_batch(&aggregated)
        .await
        .unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RecordOutcome::Put { .. }))
    );
    let big = Event {
        user: "x".repeat(300),
        n: 0,
    };
    assert!(matches!(
        producer.put(&big).await.unwrap(),
        RecordOutcome::Rejected(why) if why.contains("partition key has 300 characters")
    ));

    // The engine drains both shards: 1,000 events delivered (aggregates de-aggregated).
    let dir = std::env::temp_dir().join(format!("kpipe-lite-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = FileCheckpoints::new(dir.join("checkpoints.json"));
    let engine = Lite::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let read = KinesisReader::new(&config, Lite::events().into())
        .drain_into(&engine, StartAt::TrimHorizon, &store)
        .await
        .unwrap();
    let report = engine.shutdown().await.unwrap();
    assert_eq!(read.per_shard.len(), 2);
    assert_eq!(report.deliveries[0].received, 1000);
    assert_eq!(report.deliveries[0].delivered, 1000);
    store.save(&read.checkpoints).unwrap();

    // From the checkpoints: only what is new.
    producer
        .put_batch(&[event(1000), event(1001)])
        .await
        .unwrap();
    let engine = Lite::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let again = KinesisReader::new(&config, Lite::events().into())
        .drain_into(&engine, StartAt::TrimHorizon, &store)
        .await
        .unwrap();
    engine.shutdown().await.unwrap();
    assert_eq!((again.records, again.reread), (2, 0));
    std::fs::remove_dir_all(dir).unwrap();
}

/// kinesalite closes a split parent as AWS does (moto keeps writing to it), so resharding is
/// tested here: the parent is read to its end before its children.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_split_the_parent_is_drained_before_its_children() {
    let lite = Kinesalite::start().expect("kinesalite runs (scripts/test installs it with npm)");
    let config = lite.sdk_config("us-west-2").await;
    let kinesis = aws_sdk_kinesis::Client::new(&config);
    kinesis
        .create_stream()
        .stream_name("resharded")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    let producer = KinesisProducer::new(&config, Resharded::events());
    producer
        .put_batch(&(0..100).map(event).collect::<Vec<_>>())
        .await
        .unwrap();
    kinesis
        .split_shard()
        .stream_name("resharded")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    // The split takes effect when the stream is ACTIVE again.
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let s = kinesis
            .describe_stream_summary()
            .stream_name("resharded")
            .send()
            .await
            .unwrap();
        if *s.stream_description_summary().unwrap().stream_status()
            == aws_sdk_kinesis::types::StreamStatus::Active
        {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the split never finished"
        );
        tokio::task::yield_now().await;
    }
    producer
        .put_batch(&(100..200).map(event).collect::<Vec<_>>())
        .await
        .unwrap();

    let dir = std::env::temp_dir().join(format!("kpipe-reshard-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = FileCheckpoints::new(dir.join("c.json"));
    let engine = Resharded::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let read = KinesisReader::new(&config, Resharded::events().into())
        .drain_into(&engine, StartAt::TrimHorizon, &store)
        .await
        .unwrap();
    let report = engine.shutdown().await.unwrap();
    assert_eq!(read.records, 200, "{read:?}");
    assert_eq!(
        read.per_shard.len(),
        3,
        "the parent and its two children: {read:?}"
    );
    assert_eq!(read.per_shard["shardId-000000000000"], 100);
    assert_eq!(report.deliveries[0].received, 200);
    std::fs::remove_dir_all(dir).unwrap();
}

/// A checkpoint file that says when it is saved.
struct Watched {
    file: FileCheckpoints,
    saved: tokio::sync::Notify,
}

impl CheckpointStore for Watched {
    fn load(&self) -> std::io::Result<Checkpoints> {
        self.file.load()
    }

    fn save(&self, checkpoints: &Checkpoints) -> std::io::Result<()> {
        self.file.save(checkpoints)?;
        self.saved.notify_one();
        Ok(())
    }

    fn load_progress(&self) -> std::io::Result<Checkpoints> {
        self.file.load_progress()
    }

    fn save_progress(&self, progress: &Checkpoints) -> std::io::Result<()> {
        self.file.save_progress(progress)
    }
}

/// Lines in every object of the store.
async fn lines(store: &InMemory) -> usize {
    use futures::TryStreamExt as _;
    use kpipe_runtime::engine::object_store::{ObjectStore as _, ObjectStoreExt as _};
    let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
    let mut n = 0;
    for meta in metas {
        let bytes = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        n += bytes.iter().filter(|b| **b == b'\n').count();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuous_read_saves_checkpoints_as_it_delivers() {
    let lite = Kinesalite::start().expect("kinesalite runs (scripts/test installs it with npm)");
    let config = lite.sdk_config("us-west-2").await;
    aws_sdk_kinesis::Client::new(&config)
        .create_stream()
        .stream_name("steady-events")
        .shard_count(2)
        .send()
        .await
        .unwrap();
    let outcomes = KinesisProducer::new(&config, Steady::events())
        .put_batch(&(0..300).map(event).collect::<Vec<_>>())
        .await
        .unwrap();
    // Where each shard ends: what a checkpoint covering everything says.
    let mut ends = Checkpoints::new();
    for o in outcomes {
        let RecordOutcome::Put {
            shard_id,
            sequence_number,
        } = o
        else {
            panic!("every event is put: {o:?}");
        };
        let end = ends.entry(shard_id).or_default();
        if end.len() < sequence_number.len()
            || (end.len() == sequence_number.len() && *end < sequence_number)
        {
            *end = sequence_number;
        }
    }

    let dir = std::env::temp_dir().join(format!("kpipe-steady-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Watched {
        file: FileCheckpoints::new(dir.join("checkpoints.json")),
        saved: tokio::sync::Notify::new(),
    };
    let objects = Arc::new(InMemory::new());
    let engine = Steady::local().store(objects.clone()).start().unwrap();
    // The S3 buffer (5 MiB or 300 s) would hold the records for minutes: the checkpoint has
    // them written first. Stop once a checkpoint covers every event.
    let stop = async {
        loop {
            store.saved.notified().await;
            if store.load().unwrap() == ends {
                return;
            }
        }
    };
    let stop = async {
        tokio::time::timeout(std::time::Duration::from_secs(120), stop)
            .await
            .expect("a checkpoint is saved while reading");
    };
    let read = KinesisReader::new(&config, Steady::events().into())
        .checkpoint_every(std::time::Duration::from_millis(100))
        .read_until(&engine, StartAt::TrimHorizon, &store, stop)
        .await
        .unwrap();
    // Before shutdown: what the saved checkpoints cover is already in the store.
    assert!(read.saved >= 1, "{read:?}");
    assert_eq!(read.records, 300);
    assert_eq!(store.load().unwrap(), read.checkpoints);
    assert_eq!(lines(&objects).await, 300);

    // A crash now (no shutdown, no final save) reads nothing again.
    drop(engine);
    let engine = Steady::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let again = KinesisReader::new(&config, Steady::events().into())
        .drain_into(&engine, StartAt::TrimHorizon, &store)
        .await
        .unwrap();
    engine.shutdown().await.unwrap();
    assert_eq!((again.records, again.reread), (0, 0));
    std::fs::remove_dir_all(dir).unwrap();
}
