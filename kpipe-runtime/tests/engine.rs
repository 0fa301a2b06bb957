//! The local engine end to end, on tokio's paused clock and an in-memory object store.

use futures::StreamExt;
use kpipe_runtime::engine::LocalInvoker;
use kpipe_runtime::engine::{EntryError, PutError, decompress};
use kpipe_runtime::firehose::{BatchRecord, BatchResult, InvocationError, InvokeFuture, Invoker};
use kpipe_runtime::spec::Compression;
use kpipe_runtime::{Outcome, Pipeline};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Enriched {
    sensor_id: String,
    site: String,
    fahrenheit: f64,
}

fn enrich(r: Reading) -> Outcome<Enriched> {
    if r.sensor_id.starts_with("test-") {
        return Outcome::Dropped;
    }
    if r.sensor_id == "panic" {
        panic!("boom");
    }
    if r.celsius < -273.15 {
        return Outcome::failed(format!("implausible {} °C", r.celsius));
    }
    Outcome::Ok(Enriched {
        sensor_id: r.sensor_id,
        site: r.site,
        fahrenheit: r.celsius * 1.8 + 32.0,
    })
}

kpipe_runtime::pipeline! {
    pipeline Telemetry {
        region: "us-west-2",
        stream readings: Reading {
            name: "sensor-readings",
            capacity: provisioned(shards: 2),
            partition_key: sensor_id,
        }
        transform enrich: Reading -> Enriched {
            function: crate::enrich,
            buffer: 1MiB or 60s,
            retries: 3,
        }
        s3 lake: Enriched {
            bucket: "acme-telemetry",
            prefix: "raw/site=!{partitionKeyFromQuery:site}/!{timestamp:yyyy/MM/dd/HH}/",
            error_prefix: "errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/",
            buffer: 64MiB or 300s,
            partition_keys: { site: .site },
        }
        delivery sensor_lake: readings -> enrich -> lake;
    }
}

kpipe_runtime::pipeline! {
    pipeline Raw {
        stream events: Enriched { capacity: provisioned(shards: 4), partition_key: sensor_id }
        s3 small: Enriched { bucket: "acme-small", buffer: 1MiB or 900s, compression: gzip }
        s3 zipped: Enriched { bucket: "acme-zipped", compression: zip, time_zone: "Asia/Tokyo" }
        s3 snappy: Enriched { bucket: "acme-snappy", compression: snappy, prefix: "s/" }
        s3 hadoop: Enriched { bucket: "acme-hadoop", compression: hadoop_snappy, file_extension: ".snappy" }
        delivery to_small: events -> small;
        delivery to_zipped: events -> zipped;
        delivery to_snappy: events -> snappy;
        delivery to_hadoop: events -> hadoop;
        delivery put: direct -> small;
    }
}

kpipe_runtime::pipeline! {
    pipeline Large {
        stream big: Enriched {
            capacity: provisioned(shards: 1),
            partition_key: sensor_id,
            max_record_size: 4MiB,
        }
    }
}

kpipe_runtime::pipeline! {
    pipeline BackedUp {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich }
        s3 lake: Enriched { bucket: "acme-lake", buffer: 1MiB or 60s }
        s3 raw: Reading { bucket: "acme-raw", prefix: "source/", buffer: 1MiB or 300s, compression: gzip }
        delivery to_lake: readings -> enrich -> lake { s3_backup: raw }
    }
}

kpipe_runtime::pipeline! {
    pipeline Ordered {
        stream zulu: Enriched { capacity: provisioned(shards: 1), partition_key: sensor_id }
        stream alpha: Enriched { capacity: provisioned(shards: 1), partition_key: sensor_id }
        s3 out: Enriched { bucket: "acme-ordered" }
        delivery from_zulu: zulu -> out;
        delivery from_alpha: alpha -> out;
    }
}

kpipe_runtime::pipeline! {
    pipeline Queried {
        s3 by_site: Enriched {
            bucket: "acme-queried",
            prefix: "site=!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: .site },
        }
        delivery put: direct -> by_site;
    }
}

/// 2026-11-27T08:00:00Z
const START_MS: i64 = 1_795_766_400_000;

kpipe_runtime::pipeline! {
    pipeline Multicore {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich, buffer: 1MiB or 60s }
        s3 flat: Enriched { bucket: "acme-flat" }
        s3 by_site: Enriched {
            bucket: "acme-by-site",
            prefix: "site=!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: .site },
        }
        delivery to_flat: readings -> enrich -> flat;
        delivery to_sites: readings -> enrich -> by_site;
    }
}

fn reading(sensor_id: &str, site: &str, celsius: f64) -> Reading {
    Reading {
        sensor_id: sensor_id.into(),
        site: site.into(),
        celsius,
    }
}

/// Puts and flushes can run on any task: their futures are `Send` (they never hold a shard's
/// lock across a wait). Checked when this compiles; never called.
#[allow(dead_code)]
fn puts_and_flushes_can_be_spawned<P: Pipeline + Send + Sync + 'static>(
    engine: Arc<kpipe_runtime::engine::LocalEngine<P>>,
    p: kpipe_runtime::engine::Producer<Reading>,
) {
    let r = reading("s", "oslo", 1.0);
    tokio::spawn({
        let p = p.clone();
        async move { p.put(&r).await.map(drop) }
    });
    tokio::spawn({
        let p = p.clone();
        async move { p.put_batch(&[reading("s", "oslo", 1.0)]).await.map(drop) }
    });
    tokio::spawn(async move { p.put_bytes("key", b"{}".to_vec()).await.map(drop) });
    tokio::spawn(async move { engine.flush().await.map(drop) });
}

async fn objects(store: &InMemory) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut list = store.list(None);
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        let bytes = object_store::ObjectStoreExt::get(store, &meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.push((meta.location.to_string(), bytes.to_vec()));
    }
    out.sort();
    out
}

/// Lets the engine's tasks run (the paused clock stays put while this task keeps yielding).
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// Waits until the store holds `n` objects: compression runs on a blocking thread, so this
/// waits on the condition, bounded by 30 s of real time, instead of guessing a duration.
async fn wait_for_objects(store: &InMemory, n: usize) -> Vec<(String, Vec<u8>)> {
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = objects(store).await;
        if found.len() >= n || std::time::Instant::now() > give_up {
            return found;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn golden_layout_of_objects_and_error_documents() {
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .seed(1)
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    p.put(&reading("s-1", "berlin", 100.0))
        .await
        .unwrap()
        .unwrap();
    p.put(&reading("s-2", "oslo", 0.0)).await.unwrap().unwrap();
    p.put(&reading("test-9", "lab", 20.0))
        .await
        .unwrap()
        .unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    p.put(&reading("s-3", "berlin", -300.0))
        .await
        .unwrap()
        .unwrap();
    p.put_bytes("s-4", &b"{not json"[..])
        .await
        .unwrap()
        .unwrap();
    p.put(&reading("s-1", "berlin", 0.0))
        .await
        .unwrap()
        .unwrap();

    // Before the processor interval (60 s) nothing is invoked, so nothing is written.
    settle().await;
    assert!(objects(&store).await.is_empty());

    // After it, the batch is transformed and buffered; objects wait for the S3 interval.
    tokio::time::advance(Duration::from_secs(50)).await;
    settle().await;
    assert!(
        objects(&store).await.is_empty(),
        "S3 buffers flush after 300 s, not before"
    );

    tokio::time::advance(Duration::from_secs(300)).await;
    let written = wait_for_objects(&store, 3).await;
    let keys: Vec<&str> = written.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "acme-telemetry/errors/processing-failed/2026/11/27/sensor-lake-1-2026-11-27-08-00-10-71bb54d8-d101-45b9-834d-0bff90150280",
            "acme-telemetry/raw/site=berlin/2026/11/27/08/sensor-lake-1-2026-11-27-08-00-00-910a2dec-8902-4cc1-beeb-8da1658eec67",
            "acme-telemetry/raw/site=oslo/2026/11/27/08/sensor-lake-1-2026-11-27-08-00-00-f893a2ee-fb32-455e-b1c1-8690ee42c90b",
        ]
    );
    assert_eq!(
        String::from_utf8(written[1].1.clone()).unwrap(),
        "{\"sensor_id\":\"s-1\",\"site\":\"berlin\",\"fahrenheit\":212.0}\n{\"sensor_id\":\"s-1\",\"site\":\"berlin\",\"fahrenheit\":32.0}\n"
    );
    assert_eq!(
        String::from_utf8(written[2].1.clone()).unwrap(),
        "{\"sensor_id\":\"s-2\",\"site\":\"oslo\",\"fahrenheit\":32.0}\n"
    );
    let errors: Vec<serde_json::Value> = String::from_utf8(written[0].1.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 2);
    let arn = "arn:aws:lambda:us-west-2:000000000000:function:telemetry-enrich";
    let by_code = |code: &str| {
        errors
            .iter()
            .find(|e| e["errorMessage"].as_str().unwrap().contains(code))
            .unwrap()
            .clone()
    };
    let implausible = by_code("implausible");
    assert_eq!(implausible["errorCode"], "Lambda.ProcessingFailedStatus");
    assert_eq!(implausible["attemptsMade"], 1);
    assert_eq!(implausible["arrivalTimestamp"], START_MS + 10_000);
    assert_eq!(implausible["attemptEndingTimestamp"], START_MS + 60_000);
    assert_eq!(implausible["lambdaArn"], arn);
    let undecodable = by_code("does not decode");
    // The raw bytes are kept, base64.
    assert_eq!(undecodable["rawData"], "e25vdCBqc29u");

    let report = engine.shutdown().await.unwrap();
    assert!(report.is_conserved(), "{report}");
    let d = &report.deliveries[0];
    assert_eq!((d.received, d.delivered, d.dropped, d.failed), (6, 3, 1, 2));
    assert_eq!(d.destination.objects, 2);
    assert_eq!(d.error_output.objects, 1);
    let t = d.transform.as_ref().unwrap();
    assert_eq!((t.invocations, t.ok, t.dropped, t.failed), (1, 3, 1, 2));
    // Shutdown flushed nothing new: everything had been written on time.
    assert_eq!(objects(&store).await.len(), 3);
}

/// The Telemetry engine on `store`, with 50 readings put across three sites.
async fn fifty_readings(
    store: &Arc<InMemory>,
) -> (
    kpipe_runtime::LocalEngine<Telemetry>,
    kpipe_runtime::engine::Producer<Reading>,
) {
    let engine = Telemetry::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    for i in 0..50 {
        p.put(&reading(&format!("s-{i}"), ["a", "b", "c"][i % 3], 1.0))
            .await
            .unwrap()
            .unwrap();
    }
    (engine, p)
}

#[tokio::test(start_paused = true)]
async fn shutdown_drains_every_buffer() {
    let store = Arc::new(InMemory::new());
    let (engine, _) = fifty_readings(&store).await;
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.deliveries[0].delivered, 50);
    assert_eq!(objects(&store).await.len(), 3);
    let lines: usize = objects(&store)
        .await
        .iter()
        .map(|(_, b)| b.iter().filter(|c| **c == b'\n').count())
        .sum();
    assert_eq!(lines, 50);
}

#[tokio::test(start_paused = true)]
async fn objects_flush_when_the_size_hint_is_reached_before_compression() {
    let store = Arc::new(InMemory::new());
    let engine = Raw::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Raw::events()).unwrap();
    let record = Enriched {
        sensor_id: "x".into(),
        site: "s".repeat(1000),
        fahrenheit: 1.0,
    };
    // ~1 KiB each: the 1 MiB buffer of `small` fills after about 1,030 records.
    for _ in 0..1100 {
        p.put(&record).await.unwrap().unwrap();
    }
    let small: Vec<_> = wait_for_objects(&store, 1)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("acme-small/"))
        .collect();
    assert_eq!(
        small.len(),
        1,
        "one object once 1 MiB of uncompressed records arrived"
    );
    let raw = decompress(&small[0].1, Compression::Gzip).unwrap();
    assert!(raw.len() >= 1024 * 1024 && raw.len() < 1024 * 1024 + 1100);
    assert!(small[0].0.ends_with(".gz"));
    let report = engine.shutdown().await.unwrap();
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn compressions_extensions_and_time_zones() {
    let store = Arc::new(InMemory::new());
    let engine = Raw::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Raw::events()).unwrap();
    let e = Enriched {
        sensor_id: "a".into(),
        site: "s".into(),
        fahrenheit: 1.0,
    };
    p.put(&e).await.unwrap().unwrap();
    engine.shutdown().await.unwrap();
    let expected = format!("{}\n", serde_json::to_string(&e).unwrap());
    for (key, body) in objects(&store).await {
        let (c, ext) = match key.split('/').next().unwrap() {
            "acme-small" => (Compression::Gzip, ".gz"),
            "acme-zipped" => (Compression::Zip, ".zip"),
            "acme-snappy" => (Compression::Snappy, ".snappy"),
            "acme-hadoop" => (Compression::HadoopSnappy, ".snappy"),
            other => panic!("unexpected bucket {other}"),
        };
        assert!(key.ends_with(ext), "{key}");
        assert_eq!(
            String::from_utf8(decompress(&body, c).unwrap()).unwrap(),
            expected,
            "{key}"
        );
        if key.starts_with("acme-zipped/") {
            // Asia/Tokyo is UTC+9: prefix and name use local time.
            assert!(
                key.starts_with("acme-zipped/2026/11/27/17/to-zipped-1-2026-11-27-17-00-00-"),
                "{key}"
            );
        }
        if key.starts_with("acme-snappy/") {
            // A prefix without a timestamp gets Firehose's default one appended.
            assert!(
                key.starts_with("acme-snappy/s/2026/11/27/08/to-snappy-1-"),
                "{key}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn shards_keep_order_and_route_like_aws() {
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    let mut last_seq: [String; 2] = Default::default();
    for i in 0..500 {
        let out = p
            .put(&reading(&format!("pk-{}", i % 37), "same", f64::from(i)))
            .await
            .unwrap()
            .unwrap();
        let shard = if out.shard_id() == "shardId-000000000000" {
            0
        } else {
            1
        };
        assert!(
            out.sequence_number() > last_seq[shard],
            "sequence numbers increase per shard"
        );
        last_seq[shard] = out.sequence_number();
    }
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.streams[0].per_shard, vec![174, 326]);
    // One partition, so one object: records of one shard keep their order in it.
    let (_, body) = objects(&store)
        .await
        .into_iter()
        .find(|(k, _)| k.contains("site=same"))
        .unwrap();
    let temps: Vec<f64> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Enriched>(l).unwrap())
        .filter(|e| e.sensor_id == "pk-5")
        .map(|e| e.fahrenheit)
        .collect();
    assert!(
        temps.windows(2).all(|w| w[0] < w[1]),
        "per-key order kept: {temps:?}"
    );
    assert_eq!(temps.len(), 14);
}

#[tokio::test(start_paused = true)]
async fn put_limits_are_typed_errors() {
    let engine = Telemetry::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    assert_eq!(
        p.put(&reading("", "x", 1.0)).await.unwrap_err(),
        PutError::InvalidPartitionKey { chars: 0 }
    );
    assert_eq!(
        p.put(&reading(&"k".repeat(257), "x", 1.0))
            .await
            .unwrap_err(),
        PutError::InvalidPartitionKey { chars: 257 }
    );
    // The limit counts characters, not bytes: 256 two-byte characters pass, 257 do not.
    assert!(p.put(&reading(&"é".repeat(256), "x", 1.0)).await.is_ok());
    assert_eq!(
        p.put(&reading(&"é".repeat(257), "x", 1.0))
            .await
            .unwrap_err(),
        PutError::InvalidPartitionKey { chars: 257 }
    );
    let big = vec![b'x'; 1024 * 1024];
    assert!(matches!(
        p.put_bytes("k", big).await.unwrap_err(),
        PutError::RecordTooLarge {
            limit: 1_048_576,
            ..
        }
    ));
    let many: Vec<Reading> = (0..501)
        .map(|i| reading(&format!("k{i}"), "x", 1.0))
        .collect();
    assert_eq!(
        p.put_batch(&many).await.unwrap_err(),
        PutError::TooManyRecords(501)
    );
    let out = p.put_batch(&many[..500]).await.unwrap();
    assert_eq!((out.failed_record_count, out.records.len()), (0, 500));
    let report = engine.shutdown().await.unwrap();
    assert_eq!(
        report.streams[0].records, 501,
        "refused requests wrote nothing (the batch of 500 and the key of 256 characters did)"
    );
    assert!(matches!(
        p.put(&reading("k", "x", 1.0)).await,
        Err(PutError::Closed)
    ));
}

#[tokio::test(start_paused = true)]
async fn shard_write_limits_answer_throughput_exceeded_per_entry() {
    let engine = Telemetry::local()
        .store(Arc::new(InMemory::new()))
        .enforce_shard_limits(true)
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    // One key, so one shard: 1,000 records per second, then ProvisionedThroughputExceeded.
    let batch: Vec<Reading> = (0..500)
        .map(|i| reading("same-key", "x", f64::from(i)))
        .collect();
    assert_eq!(p.put_batch(&batch).await.unwrap().failed_record_count, 0);
    assert_eq!(p.put_batch(&batch).await.unwrap().failed_record_count, 0);
    let third = p.put_batch(&batch).await.unwrap();
    assert_eq!(third.failed_record_count, 500);
    assert_eq!(
        third.records[0].as_ref().unwrap_err().code(),
        "ProvisionedThroughputExceededException"
    );
    // A second later the shard takes records again: a producer's backoff works.
    tokio::time::advance(Duration::from_secs(1)).await;
    let retry = p.put(&reading("same-key", "x", 1.0)).await.unwrap();
    assert!(retry.is_ok());
    let report = engine.shutdown().await.unwrap();
    assert_eq!(
        (report.streams[0].records, report.streams[0].throttled),
        (1001, 500)
    );
    assert!(matches!(
        third.records[499],
        Err(EntryError::ProvisionedThroughputExceeded { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn fed_lines_are_checked_put_or_rejected_and_throttled_entries_retried() {
    use kpipe_runtime::engine::input::{Feeder, Input};
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local()
        .store(store.clone())
        .enforce_shard_limits(true)
        .start()
        .unwrap();
    let mut feeder = Feeder::new(&engine, Input::Stream(Telemetry::readings().into())).unwrap();
    // 2,500 readings on one key (one shard takes 1,000 a second, so most are throttled once
    // and put again after a backoff), a line that is not a Reading, a blank line, a reading
    // with an empty partition key and one over the 1 MiB record limit.
    let mut text = String::new();
    for i in 0..2500 {
        text.push_str(&serde_json::to_string(&reading("same-key", "oslo", f64::from(i))).unwrap());
        text.push('\n');
    }
    text.push_str("{\"sensor_id\": 7}\n\n");
    text.push_str(&serde_json::to_string(&reading("", "oslo", 1.0)).unwrap());
    text.push_str("\r\n");
    text.push_str(
        &serde_json::to_string(&reading(&"x".repeat(200), &"y".repeat(1 << 20), 1.0)).unwrap(),
    );
    // A line that is not a Reading and too large is counted once, as rejected; a 3 MiB line
    // is skipped without being held whole.
    text.push_str(&format!("\n\"{}\"\n", "a".repeat((1 << 20) - 2)));
    text.push_str(&"z".repeat(3 << 20));
    feeder
        .feed_lines(tokio::io::BufReader::new(text.as_bytes()))
        .await
        .unwrap();
    let fed = feeder.finish().await.unwrap();
    let report = engine.shutdown().await.unwrap();

    assert_eq!(
        (fed.lines, fed.put, fed.not_of_type, fed.rejected),
        (2505, 2501, 1, 4)
    );
    assert!(fed.retried >= 1500, "{fed:?}");
    let lines: Vec<(u64, &str)> = fed.problems.iter().map(|p| (p.line, p.kind)).collect();
    assert_eq!(
        lines,
        [
            (2501, "not_of_type"),
            (2503, "rejected"),
            (2504, "rejected"),
            (2505, "rejected"),
            (2506, "rejected")
        ]
    );
    assert!(
        fed.problems[3]
            .message
            .contains("the stream takes at most 1048576"),
        "{fed:?}"
    );
    assert!(
        fed.problems[3].message.contains("not a `Reading`"),
        "{fed:?}"
    );
    assert!(
        fed.problems[4]
            .message
            .starts_with("the line is 3145728 bytes"),
        "{fed:?}"
    );
    assert!(
        fed.problems[0]
            .message
            .starts_with("not a `Reading`: invalid type"),
        "{fed:?}"
    );
    assert!(
        fed.problems[2]
            .message
            .starts_with("the line is 1048817 bytes, more than the 1048578"),
        "{fed:?}"
    );
    // Every put record went through: the one that is not a Reading became an error document.
    assert_eq!(report.streams[0].records, 2501);
    let d = &report.deliveries[0];
    assert_eq!((d.received, d.delivered, d.failed), (2501, 2500, 1));
    assert!(report.is_conserved());
}

/// Fails the first `failures` invocations, then behaves; optionally loses a record id.
struct Flaky {
    inner: LocalInvoker,
    failures: u32,
    calls: AtomicU32,
    drop_one_id: bool,
}

impl Invoker for Flaky {
    fn invoke<'a>(&'a self, records: &'a [BatchRecord]) -> InvokeFuture<'a> {
        Box::pin(async move {
            let call = self.calls.fetch_add(1, Ordering::SeqCst);
            if call < self.failures {
                return Err(InvocationError::FunctionError(format!(
                    "timeout on call {call}"
                )));
            }
            let mut out: Vec<BatchResult> = self.inner.invoke(records).await?;
            if self.drop_one_id {
                out.pop();
            }
            Ok(out)
        })
    }
}

fn flaky(failures: u32, drop_one_id: bool) -> Arc<Flaky> {
    let processor = Telemetry::sensor_lake().processor().clone();
    Arc::new(Flaky {
        inner: LocalInvoker::new(processor),
        failures,
        calls: AtomicU32::new(0),
        drop_one_id,
    })
}

async fn run_with(invoker: Arc<Flaky>) -> (kpipe_runtime::RunReport, Vec<(String, Vec<u8>)>) {
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .invoker(Telemetry::enrich(), invoker)
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    for i in 0..10 {
        p.put(&reading(&format!("s-{i}"), "x", 1.0))
            .await
            .unwrap()
            .unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    (report, objects(&store).await)
}

#[tokio::test(start_paused = true)]
async fn failed_invocations_are_retried() {
    let inv = flaky(2, false);
    let (report, _) = run_with(inv.clone()).await;
    let t = report.deliveries[0].transform.clone().unwrap();
    assert_eq!((t.invocations, t.failed_invocations, t.ok), (3, 2, 10));
    assert_eq!(report.deliveries[0].delivered, 10);
}

#[tokio::test(start_paused = true)]
async fn after_the_last_retry_every_record_becomes_an_error_document() {
    let (report, written) = run_with(flaky(100, false)).await;
    let d = &report.deliveries[0];
    assert_eq!((d.received, d.delivered, d.failed), (10, 0, 10));
    assert_eq!(
        d.transform.as_ref().unwrap().invocations,
        4,
        "1 call + 3 retries"
    );
    let (key, body) = &written[0];
    assert!(
        key.starts_with("acme-telemetry/errors/processing-failed/"),
        "{key}"
    );
    let docs: Vec<serde_json::Value> = String::from_utf8(body.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 10);
    assert!(
        docs.iter()
            .all(|d| d["attemptsMade"] == 4 && d["errorCode"] == "Lambda.FunctionError")
    );
    assert_eq!(
        docs[0]["errorMessage"],
        "The Lambda function failed: timeout on call 3"
    );
}

#[tokio::test(start_paused = true)]
async fn a_response_missing_a_record_id_fails_the_whole_batch() {
    let (report, written) = run_with(flaky(0, true)).await;
    let d = &report.deliveries[0];
    assert_eq!((d.delivered, d.failed), (0, 10));
    let body = String::from_utf8(written[0].1.clone()).unwrap();
    assert!(
        body.lines()
            .all(|l| l.contains("\"errorCode\":\"Lambda.MissingRecordId\""))
    );
}

#[tokio::test(start_paused = true)]
async fn a_panic_fails_one_record_not_the_batch() {
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    p.put(&reading("panic", "x", 1.0)).await.unwrap().unwrap();
    p.put(&reading("fine", "x", 1.0)).await.unwrap().unwrap();
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert_eq!((d.delivered, d.failed), (1, 1));
    let errors = objects(&store)
        .await
        .into_iter()
        .find(|(k, _)| k.contains("/errors/"))
        .unwrap();
    assert!(
        String::from_utf8(errors.1)
            .unwrap()
            .contains("transform `enrich` panicked: boom")
    );
}

#[tokio::test(start_paused = true)]
async fn partitions_beyond_500_go_to_active_partition_exceeded() {
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    for i in 0..502 {
        p.put(&reading("s", &format!("site-{i}"), 1.0))
            .await
            .unwrap()
            .unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert_eq!(
        (d.delivered, d.failed, d.destination.objects),
        (500, 2, 500)
    );
    let overflow = objects(&store)
        .await
        .into_iter()
        .filter(|(k, _)| k.contains("activePartitionExceeded"))
        .count();
    assert_eq!(overflow, 1);
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn direct_put_deliveries() {
    let store = Arc::new(InMemory::new());
    let engine = Raw::local().store(store.clone()).start().unwrap();
    let direct = engine.direct(Raw::put()).unwrap();
    direct
        .put(&Enriched {
            sensor_id: "d".into(),
            site: "s".into(),
            fahrenheit: 2.0,
        })
        .await
        .unwrap();
    let too_large = direct
        .put_bytes(vec![0u8; 1000 * 1024 + 1])
        .await
        .unwrap_err();
    assert!(matches!(too_large, PutError::DirectRecordTooLarge { .. }));
    // Firehose's limit in Firehose's words, not the Kinesis message about partition keys.
    let message = too_large.to_string();
    assert!(
        message.contains("Firehose takes records of at most 1024000 bytes"),
        "{message}"
    );
    assert!(!message.contains("partition key"), "{message}");
    assert!(
        engine.direct(Raw::to_small()).is_err(),
        "not a direct delivery"
    );
    assert!(
        engine.producer(Telemetry::readings()).is_err(),
        "a stream of another pipeline"
    );
    let report = engine.shutdown().await.unwrap();
    let put = report.deliveries.iter().find(|d| d.name == "put").unwrap();
    assert_eq!(put.delivered, 1);
    assert!(
        put.objects[0].starts_with("acme-small/"),
        "{:?}",
        put.objects
    );
}

#[tokio::test(start_paused = true)]
async fn the_report_prints_as_a_table_and_json() {
    let engine = Telemetry::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    engine
        .producer(Telemetry::readings())
        .unwrap()
        .put(&reading("s", "x", 1.0))
        .await
        .unwrap()
        .unwrap();
    let report = engine.shutdown().await.unwrap();
    let table = report.to_string();
    assert!(table.contains("delivery sensor-lake"), "{table}");
    assert!(
        table.ends_with(
            "conservation (received = delivered + dropped + failed + undelivered): holds"
        )
    );
    let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
    assert_eq!(json["deliveries"][0]["delivered"], 1);
    assert_eq!(Telemetry::SPEC.deliveries.len(), 1);
}

#[tokio::test]
async fn writes_one_folder_per_bucket_under_the_root() {
    let root = std::env::temp_dir().join(format!("kpipe-engine-test-{}", std::process::id()));
    let engine = Raw::local().root(&root).start().unwrap();
    engine
        .direct(Raw::put())
        .unwrap()
        .put(&Enriched {
            sensor_id: "d".into(),
            site: "s".into(),
            fahrenheit: 2.0,
        })
        .await
        .unwrap();
    let report = engine.shutdown().await.unwrap();
    let key = &report
        .deliveries
        .iter()
        .find(|d| d.name == "put")
        .unwrap()
        .objects[0];
    let path = root.join(key);
    let body = decompress(&std::fs::read(&path).unwrap(), Compression::Gzip).unwrap();
    assert!(body.starts_with(b"{\"sensor_id\":\"d\""));
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test(start_paused = true)]
async fn one_store_per_bucket_keeps_keys_as_in_the_bucket() {
    let small = Arc::new(InMemory::new());
    let others = Arc::new(InMemory::new());
    let (s, o) = (small.clone(), others.clone());
    let engine = Raw::local()
        .store_per_bucket(move |bucket| -> Arc<dyn ObjectStore> {
            if bucket == "acme-small" {
                s.clone()
            } else {
                o.clone()
            }
        })
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    engine
        .direct(Raw::put())
        .unwrap()
        .put(&Enriched {
            sensor_id: "d".into(),
            site: "s".into(),
            fahrenheit: 2.0,
        })
        .await
        .unwrap();
    engine.shutdown().await.unwrap();
    let keys: Vec<String> = objects(&small).await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].starts_with("2026/11/27/08/put-1-2026-11-27-08-00-00-"),
        "{keys:?}"
    );
    assert!(objects(&others).await.is_empty());
}

#[tokio::test(start_paused = true)]
async fn kpl_aggregates_are_deaggregated_before_the_transform() {
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    let r = |id: &str| serde_json::to_vec(&reading(id, "berlin", 1.0)).unwrap();
    let (a, b, c) = (r("s-1"), r("s-2"), r("test-3"));
    let agg = kpipe_runtime::kpl::aggregate(&[("s-1", &a), ("s-2", &b), ("test-3", &c)]);
    p.put_bytes("s-1", agg).await.unwrap().unwrap();
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.streams[0].records, 1, "one Kinesis record");
    let d = &report.deliveries[0];
    assert_eq!(
        (d.received, d.delivered, d.dropped),
        (3, 2, 1),
        "three user records"
    );
}

// ===== consumers =====

mod consumers {
    use super::{Reading, reading};
    use std::sync::Mutex;

    /// Readings each consumer function saw, by pipeline.
    pub(crate) static BISECTED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    pub(crate) static WHOLE: Mutex<Vec<String>> = Mutex::new(Vec::new());
    pub(crate) static STUCK: Mutex<Vec<String>> = Mutex::new(Vec::new());
    pub(crate) static COUNTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn check(seen: &Mutex<Vec<String>>, r: Reading) -> Result<(), String> {
        if r.celsius < -273.15 {
            return Err(format!("implausible {} °C from {}", r.celsius, r.sensor_id));
        }
        seen.lock().unwrap().push(r.sensor_id);
        Ok(())
    }

    pub(crate) fn bisected(r: Reading) -> Result<(), String> {
        check(&BISECTED, r)
    }

    pub(crate) fn whole(r: Reading) -> Result<(), String> {
        check(&WHOLE, r)
    }

    pub(crate) async fn stuck(r: Reading) -> Result<(), String> {
        check(&STUCK, r)
    }

    pub(crate) static SPLIT: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(crate) fn split(r: Reading) -> Result<(), String> {
        check(&SPLIT, r)
    }

    pub(crate) fn counted(r: Reading) -> Result<(), String> {
        check(&COUNTED, r)
    }

    pub(crate) static AGING: Mutex<Vec<String>> = Mutex::new(Vec::new());
    pub(crate) static TIMED: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(crate) fn timed(r: Reading) -> Result<(), String> {
        check(&TIMED, r)
    }

    pub(crate) fn aging(r: Reading) -> Result<(), String> {
        check(&AGING, r)
    }

    pub(crate) static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    pub(crate) static QUEUED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    pub(crate) static FILTERED: Mutex<Vec<String>> = Mutex::new(Vec::new());

    pub(crate) fn recorded(r: Reading) -> Result<(), String> {
        check(&RECORDED, r)
    }

    pub(crate) fn queued(r: Reading) -> Result<(), String> {
        check(&QUEUED, r)
    }

    pub(crate) fn filtered(r: Reading) -> Result<(), String> {
        check(&FILTERED, r)
    }

    kpipe_runtime::pipeline! {
        pub(crate) pipeline Bisected {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer alerts: readings -> crate::consumers::bisected {
                starting_position: trim_horizon,
                batch_size: 10,
                bisect_on_error: true,
                maximum_retries: 5,
            }
        }
        pub(crate) pipeline Whole {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer alerts: readings -> crate::consumers::whole {
                starting_position: trim_horizon,
                batch_size: 10,
                maximum_retries: 1,
            }
        }
        pub(crate) pipeline Counted {
            stream readings: Reading { capacity: provisioned(shards: 2), partition_key: site }
            consumer alerts: readings -> crate::consumers::counted {
                starting_position: trim_horizon,
                batch_size: 7,
            }
        }
        pub(crate) pipeline Split {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer alerts: readings -> crate::consumers::split {
                starting_position: trim_horizon,
                batch_size: 16,
                bisect_on_error: true,
                maximum_retries: 1,
            }
        }
        pub(crate) pipeline Aging {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer alerts: readings -> crate::consumers::aging {
                starting_position: trim_horizon,
                batch_size: 10,
                maximum_record_age: 60s,
            }
        }
        pub(crate) pipeline Timed {
            stream readings: Reading { capacity: provisioned(shards: 2), partition_key: site }
            consumer alerts: readings -> crate::consumers::timed {
                starting_position: at_timestamp("2026-11-27T08:00:30Z"),
            }
        }
        pub(crate) pipeline Recorded {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer alerts: readings -> crate::consumers::recorded {
                starting_position: trim_horizon,
                batch_size: 10,
                bisect_on_error: true,
                maximum_retries: 2,
                on_failure: s3("acme-failed-batches"),
            }
        }
        pub(crate) pipeline Queued {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer alerts: readings -> crate::consumers::queued {
                starting_position: trim_horizon,
                batch_size: 10,
                maximum_retries: 0,
                on_failure: sqs("alerts-failed"),
            }
        }
        pub(crate) pipeline Filtered {
            stream readings: Reading { capacity: provisioned(shards: 2), partition_key: site }
            consumer alerts: readings -> crate::consumers::filtered {
                starting_position: trim_horizon,
                filter_criteria: [
                    r#"{"data": {"site": [{"prefix": "os"}], "celsius": [{"numeric": [">", 20]}]}}"#,
                    r#"{"data": {"sensor_id": ["s-3"]}}"#,
                ],
            }
        }
        pub(crate) pipeline Stuck {
            stream readings: Reading { capacity: provisioned(shards: 2), partition_key: site }
            consumer alerts: readings -> crate::consumers::stuck { starting_position: latest }
        }
    }

    /// 100 readings on one key; the 51st is below absolute zero.
    pub(crate) fn hundred(site: &str) -> Vec<Reading> {
        (0..100)
            .map(|i| {
                let celsius = if i == 50 { -300.0 } else { 1.0 };
                reading(&format!("s-{i}"), site, celsius)
            })
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_consumer_bisects_down_to_the_bad_record_and_discards_only_it() {
    use consumers::Bisected;
    let engine = Bisected::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Bisected::readings()).unwrap();
    p.put_batch(&consumers::hundred("oslo")).await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert_eq!(c.name, "bisected-alerts");
    assert_eq!(
        (c.received, c.consumed, c.discarded, c.blocked),
        (100, 99, 1, 0)
    );
    // Batch 50..60 fails at its first record; it is split to 5, 2 and 1 record (splits do
    // not consume the retry quota), then the record alone is retried 5 times and discarded.
    assert_eq!(c.retries, 3 + 5);
    assert!(
        c.errors[0].contains("record 51: implausible -300 °C from s-50"),
        "{c:?}"
    );
    let seen = consumers::BISECTED.lock().unwrap().clone();
    assert_eq!(seen.len(), 99);
    assert!(!seen.contains(&"s-50".to_owned()));
    assert_eq!(
        seen[49..51],
        ["s-49".to_owned(), "s-51".to_owned()],
        "in order"
    );
    assert!(report.is_conserved());
}

/// The issue's case: a batch of 16 with one poison record and `maximum_retries: 1`. AWS halves
/// the batch until the record is alone (splits do not consume the quota) and discards only it.
#[tokio::test(start_paused = true)]
async fn bisection_does_not_consume_the_retry_quota() {
    use consumers::Split;
    let engine = Split::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let readings: Vec<Reading> = (0..16)
        .map(|i| reading(&format!("p-{i}"), "oslo", if i == 5 { -300.0 } else { 1.0 }))
        .collect();
    engine
        .producer(Split::readings())
        .unwrap()
        .put_batch(&readings)
        .await
        .unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert_eq!((c.received, c.consumed, c.discarded), (16, 15, 1), "{c:?}");
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn without_bisecting_the_whole_retried_batch_is_discarded() {
    use consumers::Whole;
    let engine = Whole::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Whole::readings()).unwrap();
    p.put_batch(&consumers::hundred("oslo")).await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    // The batch 50..60 is retried once, then its 10 records are discarded.
    assert_eq!(
        (c.received, c.consumed, c.discarded, c.retries),
        (100, 90, 10, 1)
    );
    assert_eq!(consumers::WHOLE.lock().unwrap().len(), 90);
    assert!(report.to_string().contains("consumer whole-alerts"));
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn with_unlimited_retries_a_bad_record_blocks_its_shard_only() {
    use consumers::Stuck;
    let engine = Stuck::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Stuck::readings()).unwrap();
    // Two sites land on the two shards ("oslo" on one, "lima" on the other).
    let (a, b) = ("oslo", "lima");
    let shard_of =
        |out: kpipe_runtime::engine::PutRecordsOutput| out.records[0].as_ref().unwrap().shard_id();
    let bad_shard = shard_of(p.put_batch(&consumers::hundred(a)).await.unwrap());
    let good: Vec<Reading> = (0..100)
        .map(|i| reading(&format!("g-{i}"), b, 1.0))
        .collect();
    assert_ne!(bad_shard, shard_of(p.put_batch(&good).await.unwrap()));
    // Let the blocked shard retry a few times on the paused clock.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert_eq!(
        (c.received, c.consumed, c.discarded, c.blocked),
        (200, 150, 0, 50)
    );
    assert!(c.retries >= 3, "{c:?}");
    assert!(
        report
            .to_string()
            .contains("50 records blocked behind a record that keeps failing")
    );
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn flush_delivers_everything_put_so_far_and_the_engine_goes_on() {
    let store = Arc::new(InMemory::new());
    let (engine, p) = fifty_readings(&store).await;
    // The buffers (1 MiB or 60 s for the transform, 64 MiB or 300 s for S3) are far from full
    // and no time passes: only a flush writes them.
    engine.flush().await.unwrap();
    let lines = |objects: &[(String, Vec<u8>)]| {
        objects
            .iter()
            .map(|(_, b)| b.iter().filter(|c| **c == b'\n').count())
            .sum::<usize>()
    };
    let flushed = objects(&store).await;
    assert_eq!((flushed.len(), lines(&flushed)), (3, 50));
    for i in 50..60 {
        p.put(&reading(&format!("s-{i}"), "a", 1.0))
            .await
            .unwrap()
            .unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    let all = objects(&store).await;
    assert_eq!((all.len(), lines(&all)), (4, 60));
    assert_eq!(report.deliveries[0].delivered, 60);
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn flush_waits_for_consumers_and_a_blocked_shard_holds_it_up() {
    use consumers::{Counted, Stuck};
    let engine = Counted::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Counted::readings()).unwrap();
    let readings: Vec<Reading> = (0..100)
        .map(|i| reading(&format!("c-{i}"), ["oslo", "lima"][i % 2], 1.0))
        .collect();
    p.put_batch(&readings).await.unwrap();
    engine.flush().await.unwrap();
    assert_eq!(consumers::COUNTED.lock().unwrap().len(), 100);
    assert!(engine.shutdown().await.unwrap().is_conserved());

    // A record that keeps failing (unlimited retries) blocks its shard: the flush does not
    // resolve, however long the engine's clock runs.
    let engine = Stuck::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Stuck::readings()).unwrap();
    p.put_batch(&consumers::hundred("oslo")).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_secs(600), engine.flush()).await;
    assert!(waited.is_err(), "a blocked shard holds the flush up");
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.consumers[0].blocked, 50);
}

/// Partition key values go into keys as Firehose writes them: UTF-8 as it is, `/` a folder
/// level; values that would leave the output folder or that a file system cannot hold become
/// error documents, and the report names the keys actually stored.
#[tokio::test]
async fn partition_keys_are_written_as_they_are_and_bad_ones_fail_alone() {
    let root = tempfile::tempdir().unwrap();
    let engine = Telemetry::local()
        .root(root.path())
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Telemetry::readings()).unwrap();
    let long = "x".repeat(300);
    for site in ["é#~ 1%41", "a/b", "", "../../../escaped", long.as_str()] {
        p.put(&reading("s", site, 1.0)).await.unwrap().unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    assert!(report.is_conserved(), "{report}");
    let d = &report.deliveries[0];
    assert_eq!((d.delivered, d.failed), (2, 3), "{report}");
    let mut stored: Vec<&str> = d.objects.iter().map(|k| k.as_str()).collect();
    stored.sort();
    assert_eq!(stored.len(), 2);
    for (key, site) in stored.iter().zip(["site=a/b/", "site=é#~ 1%41/"]) {
        assert!(
            key.starts_with(&format!("acme-telemetry/raw/{site}2026/11/27/08/")),
            "{key}"
        );
        assert!(root.path().join(key).is_file(), "{key} is stored as named");
    }
    // Nothing escaped the output folder.
    assert!(!root.path().parent().unwrap().join("escaped").exists());
    let doc = std::fs::read_to_string(root.path().join(&d.error_objects[0])).unwrap();
    let codes: Vec<serde_json::Value> = doc
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(codes.len(), 3);
    // An empty value is refused (kpipe's choice, docs/engine.md), before any key is made.
    assert_eq!(
        codes[0]["errorCode"],
        "DynamicPartitioning.MetadataExtractionFailed"
    );
    assert!(codes[0]["errorMessage"].as_str().unwrap().contains("empty"));
    for c in &codes[1..] {
        assert_eq!(c["errorCode"], "DynamicPartitioning.InvalidObjectKey");
    }
    assert!(codes[1]["errorMessage"].as_str().unwrap().contains("`..`"));
    assert!(
        codes[2]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("255 bytes")
    );
}

/// A consumer blocked behind a record that keeps failing queues at most its input budget
/// (64 MiB) of records; beyond that puts wait (backpressure) instead of growing memory, and
/// shutdown still ends and accounts for every record.
#[tokio::test(start_paused = true)]
async fn a_blocked_consumer_holds_its_budget_then_puts_wait() {
    use consumers::Stuck;
    use std::sync::atomic::AtomicU64;
    let engine = Stuck::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Stuck::readings()).unwrap();
    p.put(&reading("bad", "oslo", -300.0))
        .await
        .unwrap()
        .unwrap();
    let big = "y".repeat(512 << 10);
    let put = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn({
        let (p, put) = (p.clone(), Arc::clone(&put));
        async move {
            // 256 MiB in all, far more than the budget; stops when the engine shuts down.
            for i in 0..512 {
                match p.put(&reading(&format!("{big}{i}"), "oslo", 1.0)).await {
                    Ok(_) => put.fetch_add(1, Ordering::SeqCst),
                    Err(e) => {
                        eprintln!("put {i}: {e}");
                        break;
                    }
                };
            }
        }
    });
    // The shard retries with a growing backoff; the paused clock jumps while all wait.
    tokio::time::sleep(Duration::from_secs(300)).await;
    let queued = put.load(Ordering::SeqCst);
    assert!(
        !producer.is_finished(),
        "puts wait once the budget is held ({queued} put)"
    );
    let budget_records = (64u64 << 20) / (512 << 10);
    assert!(
        (budget_records / 2..=budget_records + 1).contains(&queued),
        "{queued} records of 512 KiB queued"
    );
    let report = engine.shutdown().await.unwrap();
    producer.await.unwrap();
    let c = &report.consumers[0];
    assert_eq!(c.received, report.streams[0].records, "{c:?}");
    assert_eq!((c.consumed, c.blocked), (0, c.received), "{c:?}");
    assert!(report.is_conserved());
}

/// Without a transform, a `partitionKeyFromQuery` key is read with jq from the record's JSON,
/// as Firehose reads it: a record needs only the queried field, not the whole record type; it
/// fails (MetadataExtractionFailed) when it is not JSON or the query yields no scalar.
#[tokio::test]
async fn query_keys_read_the_json_as_firehose_does() {
    let store = Arc::new(InMemory::new());
    let engine = Queried::local().store(store.clone()).start().unwrap();
    let direct = engine.direct(Queried::put()).unwrap();
    let delivered = [
        r#"{"sensor_id":"s","site":"oslo","fahrenheit":1.0}"#,
        // Lacks `fahrenheit` and `sensor_id`, has something else: Firehose still partitions it.
        r#"{"site":"oslo","extra":[1,2]}"#,
        r#"{"site":42}"#,
    ];
    let failed = [
        "not json",
        r#"{"sensor_id":"s"}"#,
        r#"{"site":null}"#,
        r#"{"site":""}"#,
        r#"{"site":["a"]}"#,
        r#"{"site":{"a":1}}"#,
    ];
    for r in delivered.iter().chain(&failed) {
        direct.put_bytes(r.as_bytes().to_vec()).await.unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    assert!(report.is_conserved(), "{report}");
    let d = &report.deliveries[0];
    assert_eq!((d.delivered, d.failed), (3, 6), "{report}");
    assert_eq!(
        (d.destination.received, d.destination.failed),
        (9, 6),
        "the S3 row adds up: {report}"
    );
    let all = objects(&store).await;
    let keys: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        keys.iter()
            .filter(|k| k.starts_with("acme-queried/site=oslo/"))
            .count()
            == 1,
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("acme-queried/site=42/")),
        "{keys:?}"
    );
    let (_, errors) = all
        .iter()
        .find(|(k, _)| k.starts_with("acme-queried/errors/processing-failed/"))
        .expect("an error object");
    let docs: Vec<serde_json::Value> = std::str::from_utf8(errors)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 6);
    for (doc, raw) in docs.iter().zip(failed) {
        assert_eq!(
            doc["errorCode"],
            "DynamicPartitioning.MetadataExtractionFailed"
        );
        // The record as the destination got it, without kpipe's delimiter.
        let data = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            doc["rawData"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(data, raw.as_bytes());
    }
    assert!(
        docs[0]["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
    assert!(docs[3]["errorMessage"].as_str().unwrap().contains("empty"));
}

/// A shard's write capacity is a tank that refills at 1 MiB/s and holds the stream's maximum
/// record size: an idle shard takes a record over 1 MiB, the next large one waits for the
/// tank to refill, and a producer's backoff gets it through.
#[tokio::test(start_paused = true)]
async fn large_records_drain_the_shard_tank_and_it_refills() {
    let engine = Large::local()
        .store(Arc::new(InMemory::new()))
        .enforce_shard_limits(true)
        .start()
        .unwrap();
    let p = engine.producer(Large::big()).unwrap();
    let three_mib = vec![b'x'; 3 * 1024 * 1024];
    assert!(p.put_bytes("k", three_mib.clone()).await.unwrap().is_ok());
    let again = p.put_bytes("k", three_mib.clone()).await.unwrap();
    assert_eq!(
        again.unwrap_err().code(),
        "ProvisionedThroughputExceededException"
    );
    // Two seconds refill 2 MiB: 3 MiB are not there yet; three seconds are enough.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(p.put_bytes("k", three_mib.clone()).await.unwrap().is_err());
    tokio::time::advance(Duration::from_secs(1)).await;
    assert!(p.put_bytes("k", three_mib.clone()).await.unwrap().is_ok());
    // Over the stream's maximum record size it is refused outright, not throttled.
    let too_big = p.put_bytes("k", vec![b'x'; 4 * 1024 * 1024 + 1]).await;
    assert!(too_big.is_err(), "{too_big:?}");
    let report = engine.shutdown().await.unwrap();
    assert_eq!(
        (report.streams[0].records, report.streams[0].throttled),
        (2, 2)
    );
}

/// A `tracing` writer that keeps what is written, to assert on warnings.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An engine dropped without `shutdown()` says so, with the number of records put, and its
/// deliveries still write what they held while the runtime runs.
#[tokio::test]
async fn dropping_an_engine_without_shutdown_warns_and_still_writes() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = Arc::new(InMemory::new());
    let engine = Queried::local().store(store.clone()).start().unwrap();
    let direct = engine.direct(Queried::put()).unwrap();
    for i in 0..3 {
        let record = format!(r#"{{"sensor_id":"s-{i}","site":"oslo","fahrenheit":1.0}}"#);
        direct.put_bytes(record.into_bytes()).await.unwrap();
    }
    drop(engine);
    let warning = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        warning.contains("dropped without `shutdown().await` after 3 records"),
        "{warning}"
    );
    assert!(matches!(
        direct.put_bytes(b"{}".to_vec()).await,
        Err(PutError::Closed)
    ));
    // The delivery drains in the background: wait for its object (a condition, not a sleep
    // that hopes).
    let written = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let all = objects(&store).await;
            if all
                .iter()
                .map(|(_, b)| b.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count())
                .sum::<usize>()
                == 3
            {
                return all;
            }
            // Let the delivery task run (this test's runtime has one thread).
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the dropped engine's delivery writes its buffer");
    assert!(written[0].0.starts_with("acme-queried/site=oslo/"));
}

/// Every section of the report keeps declaration order, and each can be looked up by name.
#[tokio::test]
async fn reports_keep_declaration_order_and_look_up_by_name() {
    let engine = Ordered::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Ordered::alpha()).unwrap();
    p.put(&Enriched {
        sensor_id: "s".into(),
        site: "x".into(),
        fahrenheit: 1.0,
    })
    .await
    .unwrap()
    .unwrap();
    let report = engine.shutdown().await.unwrap();
    let streams: Vec<&str> = report.streams.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(streams, ["zulu", "alpha"]);
    let deliveries: Vec<&str> = report.deliveries.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(deliveries, ["from-zulu", "from-alpha"]);
    assert_eq!(report.stream("alpha").unwrap().records, 1);
    assert_eq!(report.delivery("from-alpha").unwrap().delivered, 1);
    assert!(report.delivery("nope").is_none() && report.consumer("nope").is_none());
}

/// With unlimited retries a failing record blocks its shard until it is older than
/// `maximum_record_age`; then its batch is discarded (counted as expired) and the shard goes on,
/// as Lambda's event source mapping does.
#[tokio::test(start_paused = true)]
async fn a_blocked_record_expires_after_maximum_record_age() {
    use consumers::{AGING, Aging};
    let engine = Aging::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Aging::readings()).unwrap();
    p.put_batch(&consumers::hundred("oslo")).await.unwrap();
    // Blocked: the flush cannot finish while the bad record is younger than 60 s.
    let early = tokio::time::timeout(Duration::from_secs(30), engine.flush()).await;
    assert!(early.is_err(), "the shard is blocked for now");
    // Once it has expired the shard goes on, and the flush finishes.
    tokio::time::timeout(Duration::from_secs(300), engine.flush())
        .await
        .expect("the bad record expires and the shard goes on")
        .unwrap();
    // Records put now are young: consumed.
    let fresh: Vec<Reading> = (0..10)
        .map(|i| reading(&format!("f-{i}"), "oslo", 1.0))
        .collect();
    p.put_batch(&fresh).await.unwrap();
    engine.flush().await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert!(c.is_conserved(), "{report}");
    // The first 50 were consumed; the bad record and the 49 behind it, all put at once, had
    // grown older than 60 s while the shard was blocked: discarded as expired.
    assert_eq!(
        (c.consumed, c.discarded, c.expired, c.blocked),
        (60, 50, 50, 0),
        "{report}"
    );
    assert_eq!(AGING.lock().unwrap().len(), 60);
    assert!(
        c.errors
            .iter()
            .any(|e| e.contains("older than maximum_record_age")),
        "{:?}",
        c.errors
    );
}

/// `on_failure: s3(..)`: the discarded record's batch leaves one invocation record in the
/// bucket, at Lambda's key, with the batch's metadata and the whole event in `payload`.
#[tokio::test(start_paused = true)]
async fn a_discarded_batch_is_recorded_in_the_on_failure_bucket() {
    use consumers::Recorded;
    let store = Arc::new(InMemory::new());
    let engine = Recorded::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Recorded::readings()).unwrap();
    p.put_batch(&consumers::hundred("oslo")).await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert_eq!((c.consumed, c.discarded), (99, 1), "{report}");
    assert_eq!((c.on_failure_sent, c.on_failure_failed), (1, 0), "{report}");
    assert!(
        report.to_string().contains("1 discarded batches recorded"),
        "{report}"
    );
    let objects = objects(&store).await;
    let [(key, body)] = &objects[..] else {
        panic!("one invocation record: {objects:?}")
    };
    // aws/lambda/<ESM-UUID>/<shardID>/YYYY/MM/DD/YYYY-MM-DDTHH.MM.SS-<Random UUID>
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(
        parts[..3],
        ["acme-failed-batches", "aws", "lambda"],
        "{key}"
    );
    assert_eq!(parts[4], "shardId-000000000000", "{key}");
    assert_eq!(parts.len(), 9, "{key}");
    let record: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["KinesisBatchInfo"]["batchSize"], 1);
    assert_eq!(record["KinesisBatchInfo"]["startSequenceNumber"], "51");
    assert!(
        record["KinesisBatchInfo"]["streamArn"]
            .as_str()
            .unwrap()
            .ends_with(":stream/readings"),
        "{record}"
    );
    let payload: serde_json::Value = serde_json::from_str(
        record["payload"]
            .as_str()
            .expect("payload is a JSON string"),
    )
    .unwrap();
    let data = payload["Records"][0]["kinesis"]["data"].as_str().unwrap();
    let bad: Reading = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, data).unwrap(),
    )
    .unwrap();
    assert_eq!(bad.sensor_id, "s-50");
}

/// `on_failure: sqs(..)`: locally the message is an object of the engine's store, metadata
/// only; without bisection the whole batch is one record.
#[tokio::test(start_paused = true)]
async fn a_discarded_batch_goes_to_the_local_queue_folder() {
    use consumers::Queued;
    let store = Arc::new(InMemory::new());
    let engine = Queued::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Queued::readings()).unwrap();
    p.put_batch(&consumers::hundred("oslo")).await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert_eq!(
        (c.consumed, c.discarded, c.on_failure_sent),
        (90, 10, 1),
        "{report}"
    );
    let objects = objects(&store).await;
    let [(key, body)] = &objects[..] else {
        panic!("one message: {objects:?}")
    };
    assert!(
        key.starts_with("_kpipe/on-failure/sqs/alerts-failed/"),
        "{key}"
    );
    let record: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(record["KinesisBatchInfo"]["batchSize"], 10);
    assert_eq!(record["KinesisBatchInfo"]["startSequenceNumber"], "51");
    assert_eq!(record["KinesisBatchInfo"]["endSequenceNumber"], "60");
    assert!(record.get("payload").is_none(), "metadata only: {record}");
}

/// `filter_criteria`: a record reaches the function only when a pattern matches its data;
/// the others are done with (counted as filtered), and conservation holds.
#[tokio::test(start_paused = true)]
async fn a_consumer_sees_only_the_records_its_filters_match() {
    use consumers::{FILTERED, Filtered};
    let engine = Filtered::local()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let p = engine.producer(Filtered::readings()).unwrap();
    let readings = vec![
        reading("s-1", "oslo", 25.0),   // first filter
        reading("s-2", "oslo", 5.0),    // too cold
        reading("s-3", "bergen", 1.0),  // second filter
        reading("s-4", "bergen", 30.0), // wrong site
        reading("s-5", "osaka", 21.5),  // first filter (prefix)
    ];
    p.put_batch(&readings).await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert_eq!((c.received, c.consumed, c.filtered), (5, 3, 2), "{report}");
    assert!(c.is_conserved(), "{report}");
    let mut seen = FILTERED.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen, ["s-1", "s-3", "s-5"]);
}

/// `at_timestamp`: records that arrived before the instant are never read (counted as
/// `before_start`), those after are consumed.
#[tokio::test(start_paused = true)]
async fn a_consumer_at_a_timestamp_reads_from_that_instant() {
    use consumers::{TIMED, Timed};
    let engine = Timed::local()
        .store(Arc::new(InMemory::new()))
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Timed::readings()).unwrap();
    let batch = |tag: &str| -> Vec<Reading> {
        (0..10)
            .map(|i| reading(&format!("{tag}-{i}"), ["oslo", "lima"][i % 2], 1.0))
            .collect()
    };
    p.put_batch(&batch("early")).await.unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    p.put_batch(&batch("late")).await.unwrap();
    engine.flush().await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert!(c.is_conserved(), "{report}");
    assert_eq!(
        (c.before_start, c.received, c.consumed),
        (10, 10, 10),
        "{report}"
    );
    let seen = TIMED.lock().unwrap();
    assert!(seen.iter().all(|id| id.starts_with("late-")), "{seen:?}");
}

/// `s3_backup`: every source record, as it was before the transform (dropped and failed ones
/// too), lands in the backup bucket under its prefix, compressed as declared; the report
/// counts them apart from the delivery's own records.
#[tokio::test(start_paused = true)]
async fn s3_backup_keeps_every_source_record_before_the_transform() {
    let store = Arc::new(InMemory::new());
    let engine = BackedUp::local().store(store.clone()).start().unwrap();
    let p = engine.producer(BackedUp::readings()).unwrap();
    let readings = vec![
        reading("a", "oslo", 1.0),
        reading("test-1", "oslo", 1.0),  // dropped by the transform
        reading("cold", "oslo", -300.0), // failed by the transform
        reading("b", "lima", 2.0),
    ];
    p.put_batch(&readings).await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert!(d.is_conserved(), "{report}");
    assert_eq!((d.delivered, d.dropped, d.failed), (2, 1, 1), "{report}");
    let b = d.backup.as_ref().expect("a backup report");
    assert_eq!(
        (b.bucket.as_str(), b.records, b.undelivered, b.objects),
        ("acme-raw", 4, 0, 1)
    );
    assert!(
        report.to_string().contains("backup s3://acme-raw"),
        "{report}"
    );
    let objects = objects(&store).await;
    let (key, body) = objects
        .iter()
        .find(|(k, _)| k.starts_with("acme-raw/"))
        .expect("a backup object");
    assert!(
        key.starts_with("acme-raw/source/") && key.ends_with(".gz"),
        "{key}"
    );
    let raw =
        kpipe_runtime::engine::decompress(body, kpipe_runtime::spec::Compression::Gzip).unwrap();
    let text = String::from_utf8(raw).unwrap();
    for r in &readings {
        assert!(
            text.contains(&format!("\"sensor_id\":\"{}\"", r.sensor_id)),
            "{text}"
        );
    }
}

// ===== tumbling windows =====

mod windows {
    use super::Reading;
    use kpipe_runtime::{Aggregate, Window};
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// A closed window: its bounds, whether it ended early, and the counts.
    pub(crate) type Closed = (i64, i64, bool, BTreeMap<String, u64>);
    pub(crate) static CLOSED: Mutex<Vec<Closed>> = Mutex::new(Vec::new());
    pub(crate) static HOARDED: Mutex<Vec<(bool, usize)>> = Mutex::new(Vec::new());

    /// Readings per site; a reading below absolute zero fails.
    #[derive(Default, Serialize, Deserialize)]
    pub(crate) struct SiteCounts {
        counts: BTreeMap<String, u64>,
    }

    impl Aggregate for SiteCounts {
        type Record = Reading;
        type Error = String;

        fn add(&mut self, r: Reading) -> Result<(), String> {
            if r.celsius < -273.15 {
                return Err(format!("implausible {} °C", r.celsius));
            }
            *self.counts.entry(r.site).or_default() += 1;
            Ok(())
        }

        async fn close(self, w: Window) -> Result<(), String> {
            CLOSED
                .lock()
                .unwrap()
                .push((w.start_ms, w.end_ms, w.terminated_early, self.counts));
            Ok(())
        }
    }

    /// Keeps every sensor id: its state grows with each record.
    #[derive(Default, Serialize, Deserialize)]
    pub(crate) struct Hoard {
        ids: Vec<String>,
    }

    impl Aggregate for Hoard {
        type Record = Reading;
        type Error = String;

        fn add(&mut self, r: Reading) -> Result<(), String> {
            self.ids.push(r.sensor_id);
            Ok(())
        }

        async fn close(self, w: Window) -> Result<(), String> {
            HOARDED
                .lock()
                .unwrap()
                .push((w.terminated_early, self.ids.len()));
            Ok(())
        }
    }

    kpipe_runtime::pipeline! {
        pub(crate) pipeline Windowed {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer site_counts: readings -> crate::windows::SiteCounts {
                starting_position: trim_horizon,
                tumbling_window: 60s,
                batch_size: 2,
                bisect_on_error: true,
                maximum_retries: 1,
            }
        }
        pub(crate) pipeline Hoarding {
            stream readings: Reading { capacity: provisioned(shards: 1), partition_key: site }
            consumer hoard: readings -> crate::windows::Hoard {
                starting_position: trim_horizon,
                tumbling_window: 300s,
                batch_size: 1,
            }
        }
    }
}

/// `tumbling_window`: each window's records are aggregated across invocations (batches of 2,
/// the state going between them as JSON), the window closes once the clock passes its end,
/// a record that fails is retried with the state from before it and discarded after its
/// retries, and the last window closes at shutdown.
#[tokio::test(start_paused = true)]
async fn a_tumbling_window_aggregates_across_batches_and_closes_at_its_end() {
    use windows::{CLOSED, Windowed};
    let engine = Windowed::local()
        .store(Arc::new(InMemory::new()))
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Windowed::readings()).unwrap();
    let sites = ["oslo", "lima", "oslo", "oslo", "lima"];
    let first: Vec<Reading> = sites
        .iter()
        .enumerate()
        .map(|(i, site)| reading(&format!("a-{i}"), site, 1.0))
        .collect();
    p.put_batch(&first).await.unwrap();
    engine.flush().await.unwrap();
    assert!(
        CLOSED.lock().unwrap().is_empty(),
        "the window is still open"
    );
    // The clock passes the window's end: it closes with what its records added up to.
    tokio::time::sleep(Duration::from_secs(61)).await;
    let closed = CLOSED.lock().unwrap().clone();
    let expected: std::collections::BTreeMap<String, u64> =
        [("lima".to_owned(), 2), ("oslo".to_owned(), 3)].into();
    assert_eq!(closed, [(START_MS, START_MS + 60_000, false, expected)]);

    // The next window: a record that keeps failing is isolated (bisect_on_error) and
    // discarded after 1 retry; the records around it count once each.
    let second = vec![
        reading("b-0", "oslo", 1.0),
        reading("b-1", "oslo", -300.0),
        reading("b-2", "lima", 1.0),
    ];
    p.put_batch(&second).await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let c = &report.consumers[0];
    assert!(c.is_conserved(), "{report}");
    assert_eq!(
        (c.consumed, c.discarded, c.windows, c.windows_failed),
        (7, 1, 2, 0),
        "{report}"
    );
    let closed = CLOSED.lock().unwrap().clone();
    assert_eq!(closed.len(), 2);
    let (start, end, early, counts) = &closed[1];
    assert_eq!(
        (*start, *end, *early),
        (START_MS + 60_000, START_MS + 120_000, false)
    );
    assert_eq!(
        counts,
        &[("lima".to_owned(), 1), ("oslo".to_owned(), 1)].into()
    );
    assert!(
        report.to_string().contains("2 tumbling windows closed"),
        "{report}"
    );
}

/// A window whose state grows past Lambda's 1 MiB ends early, marked as such, and the next
/// records start a new state.
#[tokio::test(start_paused = true)]
async fn a_window_whose_state_outgrows_1_mib_ends_early() {
    use windows::{HOARDED, Hoarding};
    let engine = Hoarding::local()
        .store(Arc::new(InMemory::new()))
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let p = engine.producer(Hoarding::readings()).unwrap();
    let big: Vec<Reading> = (0..4)
        .map(|i| reading(&format!("{i}{}", "x".repeat(400 * 1024)), "oslo", 1.0))
        .collect();
    for r in &big {
        p.put(r).await.unwrap().unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.consumers[0].windows, 2, "{report}");
    // Three ids of 400 KiB are over 1 MiB: that window ends early; the fourth starts anew.
    assert_eq!(*HOARDED.lock().unwrap(), [(true, 3), (false, 1)]);
}

/// A spec's names are resolved once: every delivery's stages through `view`, and a spec that
/// names a stage it does not declare (one not written by `pipeline!`) is a typed error,
/// never a panic, and its unresolvable delivery is left out of the views.
#[test]
fn a_spec_whose_names_do_not_resolve_is_an_error() {
    let spec = Telemetry::spec();
    spec.check().unwrap();
    let views = spec.delivery_views();
    assert_eq!(views.len(), spec.deliveries.len());
    assert_eq!(views[0].destination.bucket, "acme-telemetry");
    assert_eq!(views[0].source.unwrap().name, "sensor-readings");
    assert_eq!(views[0].transform.unwrap().id, "enrich");

    let mut broken = spec.deliveries[0];
    broken.destination = "nowhere";
    let deliveries: &'static [kpipe_runtime::spec::DeliverySpec] = Box::leak(Box::new([broken]));
    let bad = kpipe_runtime::spec::PipelineSpec {
        deliveries,
        ..*spec
    };
    let err = bad.check().unwrap_err();
    assert!(
        err.to_string().contains("s3 destination `nowhere`"),
        "{err}"
    );
    assert!(bad.delivery_views().is_empty());
}

/// An invoker is registered for a transform handle; a transform of another pipeline, even
/// with the same name, is refused when the engine starts.
#[tokio::test]
async fn an_invoker_for_another_pipelines_transform_is_refused() {
    let other = Arc::new(LocalInvoker::new(BackedUp::to_lake().processor().clone()));
    let err = Telemetry::local()
        .store(Arc::new(InMemory::new()))
        .invoker(BackedUp::enrich(), other)
        .start()
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, kpipe_runtime::engine::EngineError::UnknownStage(s) if s == "transform `enrich`"),
        "{err}"
    );
}

/// The lines of a store's objects under `prefix` (uncompressed), in key order.
async fn lines_under(store: &InMemory, prefix: &str) -> Vec<String> {
    objects(store)
        .await
        .iter()
        .filter(|(key, _)| key.starts_with(prefix))
        .flat_map(|(_, bytes)| {
            String::from_utf8(bytes.clone())
                .unwrap()
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

// Batches of 1 MiB, split across the machine's cores: what each record becomes, and the order
// of what is delivered, are those of one thread, with and without partitions.
#[tokio::test(start_paused = true)]
async fn a_batch_processed_on_every_core_keeps_order_and_accounts_for_every_record() {
    let store = Arc::new(InMemory::new());
    let engine = Multicore::local()
        .store(store.clone())
        .start_time_ms(START_MS)
        .start()
        .unwrap();
    let producer = engine.producer(Multicore::readings()).unwrap();
    let sites = ["berlin", "oslo", "lisbon"];
    let readings: Vec<Reading> = (0..20_000)
        .map(|i| {
            let id = if i % 7 == 3 {
                format!("test-{i}")
            } else {
                format!("sensor-{i:05}")
            };
            let celsius = if i % 11 == 5 {
                -300.0
            } else {
                (i % 400) as f64 / 10.0
            };
            reading(&id, sites[i % 3], celsius)
        })
        .collect();
    for chunk in readings.chunks(500) {
        let out = producer.put_batch(chunk).await.unwrap();
        assert_eq!(out.failed_record_count, 0);
    }
    let report = engine.shutdown().await.unwrap();
    assert!(report.is_conserved(), "{report}");
    let expected: Vec<Enriched> = readings
        .iter()
        .filter_map(|r| match enrich(r.clone()) {
            Outcome::Ok(e) => Some(e),
            _ => None,
        })
        .collect();
    let dropped = readings
        .iter()
        .filter(|r| r.sensor_id.starts_with("test-"))
        .count();
    let failed = readings.len() - expected.len() - dropped;
    assert!(failed > 1000 && dropped > 1000, "{failed} {dropped}");
    for d in &report.deliveries {
        assert_eq!(d.delivered as usize, expected.len(), "{}", d.name);
        assert_eq!(d.dropped as usize, dropped, "{}", d.name);
        assert_eq!(d.failed as usize, failed, "{}", d.name);
    }
    // Without partitions: the records in the order they were put, byte for byte.
    let line = |e: &Enriched| serde_json::to_string(e).unwrap();
    let flat = lines_under(&store, "acme-flat/2").await;
    assert_eq!(flat.len(), expected.len());
    assert!(
        flat.into_iter().eq(expected.iter().map(line)),
        "the flat lake holds the records in put order"
    );
    // With partitions: each site's records in the order they were put.
    for site in sites {
        let got = lines_under(&store, &format!("acme-by-site/site={site}/")).await;
        let want = expected.iter().filter(|e| e.site == site).map(line);
        assert!(got.into_iter().eq(want), "site {site} in put order");
    }
    // Every failed record is an error document, in each delivery.
    let documents: usize = objects(&store)
        .await
        .iter()
        .filter(|(key, _)| key.contains("processing-failed"))
        .map(|(_, bytes)| bytes.iter().filter(|b| **b == b'\n').count())
        .sum();
    assert_eq!(documents, 2 * failed);
}
