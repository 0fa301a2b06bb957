//! The typed producer for real Kinesis: packing and per-record outcomes against moto_server
//! (real SDK calls, records read back with GetRecords), and the retry of failed entries with a
//! `PutRecords` double that injects throttling (moto never throttles).

use kpipe_runtime::aws::moto::MotoServer;
use kpipe_runtime::kinesis::{
    Entry, EntryResult, KinesisProducer, PutRecords, RecordOutcome, Retry,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    note: String,
}

kpipe_runtime::pipeline! {
    pipeline Produced {
        region: "us-west-2",
        stream readings: Reading { name: "produced", capacity: provisioned(shards: 2), partition_key: sensor_id }
    }
}

fn reading(i: usize) -> Reading {
    Reading {
        sensor_id: format!("s-{}", i % 37),
        note: format!("reading {i}"),
    }
}

async fn read_back(config: &aws_config::SdkConfig, stream: &str) -> Vec<Reading> {
    let k = aws_sdk_kinesis::Client::new(config);
    let shards = k.list_shards().stream_name(stream).send().await.unwrap();
    let mut out = Vec::new();
    for shard in shards.shards() {
        let mut iterator = k
            .get_shard_iterator()
            .stream_name(stream)
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap()
            .shard_iterator()
            .map(str::to_owned);
        while let Some(it) = iterator {
            let page = k.get_records().shard_iterator(it).send().await.unwrap();
            if page.records().is_empty() {
                break;
            }
            for r in page.records() {
                out.push(serde_json::from_slice(r.data().as_ref()).unwrap());
            }
            iterator = page.next_shard_iterator().map(str::to_owned);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_are_packed_put_and_read_back_exactly_once() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let config = moto.sdk_config("us-west-2").await;
    kpipe_runtime::aws::Aws::<Produced>::new(&config)
        .apply(false)
        .await
        .unwrap();
    let producer = KinesisProducer::new(&config, Produced::readings());

    // 1,200 readings (three requests), one over the 1 MiB record limit, one with an empty
    // partition key: those two are rejected at put time, the rest go in.
    let mut batch: Vec<Reading> = (0..1200).map(reading).collect();
    batch.insert(
        600,
        Reading {
            sensor_id: "big".into(),
            note: "x".repeat(1 << 20),
        },
    );
    batch.insert(
        5,
        Reading {
            sensor_id: String::new(),
            note: "no key".into(),
        },
    );
    let outcomes = producer.put_batch(&batch).await.unwrap();
    assert_eq!(outcomes.len(), 1202);
    let rejected: Vec<(usize, &String)> = outcomes
        .iter()
        .enumerate()
        .filter_map(|(i, o)| match o {
            RecordOutcome::Rejected(why) => Some((i, why)),
            _ => None,
        })
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].0, 5);
    assert!(rejected[0].1.contains("partition key has 0 characters"));
    assert_eq!(rejected[1].0, 601);
    assert!(rejected[1].1.contains("the stream takes at most 1048576"));
    let put = outcomes
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Put { shard_id, sequence_number } if shard_id.starts_with("shardId-") && !sequence_number.is_empty()))
        .count();
    assert_eq!(put, 1200);

    let mut back = read_back(&config, "produced").await;
    assert_eq!(back.len(), 1200, "every valid record exactly once");
    back.sort_by_key(|r| {
        r.note
            .trim_start_matches("reading ")
            .parse::<usize>()
            .unwrap()
    });
    assert_eq!(back, (0..1200).map(reading).collect::<Vec<_>>());
}

/// A `PutRecords` double: entries whose data mentions a key in `throttle` fail with
/// ProvisionedThroughputExceeded that many times; "denied" fails without retry. Every send is
/// logged.
struct Flaky {
    throttle: Mutex<HashMap<String, u32>>,
    sent: Mutex<Vec<String>>,
}

impl PutRecords for Flaky {
    fn put_records<'a>(
        &'a self,
        _stream: &'a str,
        entries: &'a [Entry],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<EntryResult>, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (n, e) in entries.iter().enumerate() {
                let r: Reading = serde_json::from_slice(&e.data).unwrap();
                self.sent.lock().unwrap().push(r.note.clone());
                let mut throttle = self.throttle.lock().unwrap();
                if r.note == "denied" {
                    out.push(Err((
                        "KMSAccessDeniedException".into(),
                        "no key access".into(),
                    )));
                } else if let Some(left) = throttle.get_mut(&r.note).filter(|l| **l > 0) {
                    *left -= 1;
                    out.push(Err((
                        "ProvisionedThroughputExceededException".into(),
                        "Rate exceeded for shard shardId-000000000000".into(),
                    )));
                } else {
                    out.push(Ok(("shardId-000000000000".into(), format!("seq-{n}"))));
                }
            }
            Ok(out)
        })
    }
}

#[tokio::test(start_paused = true)]
async fn only_failed_entries_are_retried_with_backoff_until_attempts_run_out() {
    let flaky = Arc::new(Flaky {
        throttle: Mutex::new(HashMap::from([
            ("reading 1".to_owned(), 2),  // succeeds on the 3rd attempt
            ("reading 3".to_owned(), 99), // never succeeds
        ])),
        sent: Mutex::new(Vec::new()),
    });
    let producer = KinesisProducer::with_client(flaky.clone(), Produced::readings()).retry(Retry {
        attempts: 4,
        base: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
    });
    let mut batch: Vec<Reading> = (0..5).map(reading).collect();
    batch[4].note = "denied".into();
    let started = tokio::time::Instant::now();
    let outcomes = producer.put_batch(&batch).await.unwrap();

    assert!(matches!(outcomes[0], RecordOutcome::Put { .. }));
    assert!(matches!(outcomes[1], RecordOutcome::Put { .. }));
    assert!(matches!(outcomes[2], RecordOutcome::Put { .. }));
    assert_eq!(
        outcomes[3],
        RecordOutcome::Failed(
            "ProvisionedThroughputExceededException: Rate exceeded for shard shardId-000000000000 (after 4 attempts)".into()
        )
    );
    assert_eq!(
        outcomes[4],
        RecordOutcome::Failed("KMSAccessDeniedException: no key access (after 1 attempt)".into())
    );
    // Each entry was sent as often as it needed: successes never again.
    let sent = flaky.sent.lock().unwrap().clone();
    let times = |note: &str| sent.iter().filter(|s| *s == note).count();
    assert_eq!(
        (
            times("reading 0"),
            times("reading 1"),
            times("reading 2"),
            times("reading 3"),
            times("denied")
        ),
        (1, 3, 1, 4, 1)
    );
    // Three backoffs of at most 100, 200 and 400 ms (full jitter) on the paused clock.
    assert!(
        started.elapsed() <= Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
}

/// A `PutRecords` double that holds every call until released, counting calls in flight.
struct Gate {
    open: tokio::sync::Semaphore,
    in_flight: std::sync::atomic::AtomicUsize,
    most: std::sync::atomic::AtomicUsize,
}

impl PutRecords for Gate {
    fn put_records<'a>(
        &'a self,
        _stream: &'a str,
        entries: &'a [Entry],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<EntryResult>, String>> + Send + 'a>> {
        use std::sync::atomic::Ordering::SeqCst;
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(now, SeqCst);
            self.open.acquire().await.unwrap().forget();
            self.in_flight.fetch_sub(1, SeqCst);
            Ok(entries
                .iter()
                .map(|_| Ok(("shardId-000000000000".into(), "1".into())))
                .collect())
        })
    }
}

#[tokio::test]
async fn bytes_in_flight_are_bounded_and_callers_wait() {
    use std::sync::atomic::Ordering::SeqCst;
    let gate = Arc::new(Gate {
        open: tokio::sync::Semaphore::new(0),
        in_flight: 0.into(),
        most: 0.into(),
    });
    // A budget of one full request (10 MiB): two callers with 6 MiB each cannot both send.
    let producer = KinesisProducer::with_client(gate.clone(), Produced::readings())
        .max_in_flight_bytes(10 * 1024 * 1024);
    let six_mib: Vec<Reading> = (0..6)
        .map(|i| Reading {
            sensor_id: format!("s-{i}"),
            note: "x".repeat(1000 * 1024),
        })
        .collect();
    let (a, b) = (producer.clone(), producer.clone());
    let (ra, rb) = (six_mib.clone(), six_mib.clone());
    let first = tokio::spawn(async move { a.put_batch(&ra).await });
    let second = tokio::spawn(async move { b.put_batch(&rb).await });
    // Wait until one call is in flight; the other caller is held by the budget, not dropped.
    while gate.in_flight.load(SeqCst) == 0 {
        tokio::task::yield_now().await;
    }
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(gate.in_flight.load(SeqCst), 1);
    gate.open.add_permits(2);
    let (first, second) = (
        first.await.unwrap().unwrap(),
        second.await.unwrap().unwrap(),
    );
    assert_eq!(gate.most.load(SeqCst), 1, "never two requests at once");
    assert!(
        first
            .iter()
            .chain(&second)
            .all(|o| matches!(o, RecordOutcome::Put { .. }))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aggregated_records_arrive_as_kpl_aggregates_and_deaggregate_to_every_reading() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let config = moto.sdk_config("us-west-2").await;
    kpipe_runtime::aws::Aws::<Produced>::new(&config)
        .apply(false)
        .await
        .unwrap();
    let producer = KinesisProducer::new(&config, Produced::readings()).aggregate(true);
    let batch: Vec<Reading> = (0..1000).map(reading).collect();
    let outcomes = producer.put_batch(&batch).await.unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RecordOutcome::Put { .. }))
    );

    // 37 partition keys: 37 aggregates on the stream, holding the 1,000 readings.
    let k = aws_sdk_kinesis::Client::new(&config);
    let mut kinesis_records = 0;
    let mut readings = Vec::new();
    for shard in k
        .list_shards()
        .stream_name("produced")
        .send()
        .await
        .unwrap()
        .shards()
    {
        let it = k
            .get_shard_iterator()
            .stream_name("produced")
            .shard_id(shard.shard_id())
            .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .unwrap();
        let page = k
            .get_records()
            .shard_iterator(it.shard_iterator().unwrap())
            .send()
            .await
            .unwrap();
        for r in page.records() {
            kinesis_records += 1;
            assert!(kpipe_runtime::kpl::is_aggregated(r.data().as_ref()));
            for sub in kpipe_runtime::kpl::deaggregate(r.data().as_ref()) {
                readings.push(serde_json::from_slice::<Reading>(&sub).unwrap());
            }
        }
    }
    assert_eq!(kinesis_records, 37);
    readings.sort_by_key(|r| {
        r.note
            .trim_start_matches("reading ")
            .parse::<usize>()
            .unwrap()
    });
    assert_eq!(readings, batch);
}

/// A `PutRecords` double whose first answer covers only the first entry.
struct Short {
    calls: Mutex<u32>,
}

impl PutRecords for Short {
    fn put_records<'a>(
        &'a self,
        _stream: &'a str,
        entries: &'a [Entry],
    ) -> Pin<Box<dyn Future<Output = Result<Vec<EntryResult>, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            let answered = if *calls == 1 { 1 } else { entries.len() };
            Ok((0..answered)
                .map(|n| Ok(("shardId-000000000000".into(), format!("seq-{calls}-{n}"))))
                .collect())
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_response_with_fewer_results_than_entries_retries_the_rest() {
    let short = Arc::new(Short {
        calls: Mutex::new(0),
    });
    let producer = KinesisProducer::with_client(short.clone(), Produced::readings());
    let outcomes = producer
        .put_batch(&(0..4).map(reading).collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, RecordOutcome::Put { .. })),
        "{outcomes:?}"
    );
    assert_eq!(*short.calls.lock().unwrap(), 2);
}
