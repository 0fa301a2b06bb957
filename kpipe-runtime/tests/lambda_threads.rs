//! The Firehose handler on several threads answers byte for byte as on one: the same results,
//! outputs, partition keys and order, for sync and async transforms, KPL aggregates, and events
//! whose outputs do not all fit in Lambda's 6 MB response.

use base64::Engine as _;
use kpipe_runtime::Outcome;
use kpipe_runtime::lambda::{FirehoseHandler, MAX_RESPONSE_BYTES};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Mutex;
use std::thread::ThreadId;

#[derive(Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
    note: String,
}

#[derive(Serialize, Deserialize)]
struct Enriched {
    sensor_id: String,
    site: String,
    fahrenheit: f64,
    note: String,
}

/// The threads the sync transform ran on.
static THREADS_SEEN: Mutex<Option<HashSet<ThreadId>>> = Mutex::new(None);

fn convert(r: Reading) -> Outcome<Enriched> {
    if r.sensor_id.starts_with("test-") {
        return Outcome::Dropped;
    }
    if r.sensor_id == "panic" {
        panic!("boom");
    }
    if r.celsius < -273.15 {
        return Outcome::failed("implausible");
    }
    Outcome::Ok(Enriched {
        sensor_id: r.sensor_id,
        site: r.site,
        fahrenheit: r.celsius * 1.8 + 32.0,
        note: r.note,
    })
}

fn enrich(r: Reading) -> Outcome<Enriched> {
    THREADS_SEEN
        .lock()
        .unwrap()
        .get_or_insert_with(HashSet::new)
        .insert(std::thread::current().id());
    // A function may use the Tokio runtime it runs under; worker threads have it too.
    if tokio::runtime::Handle::try_current().is_err() {
        return Outcome::failed("no Tokio runtime on this thread");
    }
    convert(r)
}

async fn enrich_later(r: Reading) -> Outcome<Enriched> {
    tokio::task::yield_now().await;
    convert(r)
}

kpipe_runtime::pipeline! {
    pipeline Readings {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich }
        s3 lake: Enriched {
            bucket: "acme-telemetry",
            prefix: "site=!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |e: &Enriched| e.site.clone() },
        }
        delivery d: readings -> enrich -> lake;
    }
}

kpipe_runtime::pipeline! {
    pipeline ReadingsLater {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich_later: Reading -> Enriched { function: crate::enrich_later }
        s3 lake: Enriched {
            bucket: "acme-telemetry",
            prefix: "site=!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |e: &Enriched| e.site.clone() },
        }
        delivery d: readings -> enrich_later -> lake;
    }
}

fn reading(id: &str, site: &str, celsius: f64, note: &str) -> Vec<u8> {
    serde_json::to_vec(&Reading {
        sensor_id: id.into(),
        site: site.into(),
        celsius,
        note: note.into(),
    })
    .unwrap()
}

/// `n` records of every kind: valid, dropped, failing, panicking, not JSON, not base64,
/// KPL aggregates (good and mixed), and ids with escapes.
fn event(n: usize, note_len: usize) -> Vec<u8> {
    let note = "n".repeat(note_len);
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let site = ["berlin", "oslo", "lis\"bon"][i % 3];
            let data = match i % 11 {
                1 => b64(&reading(&format!("test-{i}"), site, 1.0, &note)),
                2 => b64(&reading(&format!("s-{i}"), site, -300.0, &note)),
                3 if i % 2 == 1 => b64(&reading("panic", site, 1.0, &note)),
                4 => b64(b"not json"),
                5 => "%%% not base64".into(),
                6 => b64(&kpipe_runtime::kpl::aggregate(&[
                    ("a", &reading(&format!("s-{i}"), site, 1.0, &note)),
                    ("b", &reading(&format!("test-{i}"), site, 1.0, &note)),
                    ("c", &reading(&format!("t-{i}"), site, 2.0, &note)),
                ])),
                7 => b64(&kpipe_runtime::kpl::aggregate(&[
                    ("a", &reading(&format!("s-{i}"), "berlin", 1.0, &note)),
                    ("b", &reading(&format!("t-{i}"), "oslo", 2.0, &note)),
                ])),
                _ => b64(&reading(&format!("s-{i}"), site, i as f64 / 7.0, &note)),
            };
            let id = if i % 13 == 0 {
                format!("id\"{i}\\")
            } else {
                format!("49546986683135544286507457936321625675700192471156{i:08}")
            };
            serde_json::json!({ "recordId": id, "approximateArrivalTimestamp": 0, "data": data })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "deliveryStreamArn": "arn:aws:firehose:us-west-2:123456789012:deliverystream/d",
        "records": records,
    }))
    .unwrap()
}

fn results(response: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(response).unwrap();
    v["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_threads_answer_exactly_as_one() {
    // ~1.2 MB of records: several runs of at least 256 KiB each.
    let bytes = event(3_000, 250);
    let one = FirehoseHandler::new::<Readings, _, _>(Readings::enrich())
        .unwrap()
        .with_threads(1);
    let expected = one.handle_json(&bytes).await.unwrap();
    let kinds = results(&expected);
    assert_eq!(kinds.len(), 3_000);
    for kind in ["Ok", "Dropped", "ProcessingFailed"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind}");
    }
    THREADS_SEEN.lock().unwrap().take();
    for threads in [2, 3, 4, 8] {
        let answer = one
            .clone()
            .with_threads(threads)
            .handle_json(&bytes)
            .await
            .unwrap();
        assert!(answer == expected, "{threads} threads answer differently");
    }
    let seen = THREADS_SEEN.lock().unwrap().take().unwrap().len();
    assert!(seen > 1, "the transform ran on {seen} thread(s)");

    // An async transform: the same answers, awaited in order.
    let later = FirehoseHandler::new::<ReadingsLater, _, _>(ReadingsLater::enrich_later()).unwrap();
    for threads in [1, 3] {
        let answer = later
            .clone()
            .with_threads(threads)
            .handle_json(&bytes)
            .await
            .unwrap();
        assert!(answer == expected, "async, {threads} threads");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_limit_several_threads_fail_the_same_records() {
    // ~7 MB of output: the records that do not fit are failed, the same ones on any thread count.
    let bytes = event(1_700, 3_000);
    let one = FirehoseHandler::new::<Readings, _, _>(Readings::enrich())
        .unwrap()
        .with_threads(1);
    let expected = one.handle_json(&bytes).await.unwrap();
    assert!(expected.len() <= MAX_RESPONSE_BYTES, "{}", expected.len());
    let kinds = results(&expected);
    assert_eq!(kinds.len(), 1_700);
    let ok = kinds.iter().filter(|k| *k == "Ok").count();
    assert!(ok > 100 && ok < 1_700 * 6 / 11, "{ok} Ok");
    for threads in [2, 4] {
        let answer = one
            .clone()
            .with_threads(threads)
            .handle_json(&bytes)
            .await
            .unwrap();
        assert!(answer == expected, "{threads} threads answer differently");
    }
    let later = FirehoseHandler::new::<ReadingsLater, _, _>(ReadingsLater::enrich_later())
        .unwrap()
        .with_threads(3)
        .handle_json(&bytes)
        .await
        .unwrap();
    assert!(later == expected, "async");
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_runtime_works_too() {
    let bytes = event(3_000, 250);
    let one = FirehoseHandler::new::<Readings, _, _>(Readings::enrich())
        .unwrap()
        .with_threads(1)
        .handle_json(&bytes)
        .await
        .unwrap();
    for handler in [
        FirehoseHandler::new::<Readings, _, _>(Readings::enrich()).unwrap(),
        FirehoseHandler::new::<ReadingsLater, _, _>(ReadingsLater::enrich_later()).unwrap(),
    ] {
        let answer = handler.with_threads(4).handle_json(&bytes).await.unwrap();
        assert!(answer == one);
    }
}

kpipe_runtime::pipeline! {
    pipeline TwoDeliveries {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::convert }
        s3 lake: Enriched {
            bucket: "acme-telemetry",
            prefix: "site=!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |e: &Enriched| e.site.clone() },
        }
        s3 archive: Enriched { bucket: "acme-archive" }
        delivery to_lake: readings -> enrich -> lake;
        delivery to_archive: readings -> enrich -> archive;
    }
}

/// The event of `event(n, note_len)` with its `deliveryStreamArn` moved after the records, or
/// naming another stream.
fn with_arn_last(bytes: &[u8], stream: &str) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    let records = serde_json::to_string(&v["records"]).unwrap();
    format!(
        r#"{{"invocationId":"x","records":{records},"region":"us-west-2","deliveryStreamArn":"arn:aws:firehose:us-west-2:123456789012:deliverystream/{stream}"}}"#
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delivery_stream_named_after_the_records_picks_the_processor() {
    let plain = event(3_000, 250);
    for (stream, metadata) in [("to-lake", true), ("to-archive", false)] {
        let bytes = with_arn_last(&plain, stream);
        let one = FirehoseHandler::new::<TwoDeliveries, _, _>(TwoDeliveries::enrich())
            .unwrap()
            .with_threads(1);
        let expected = one.handle_json(&bytes).await.unwrap();
        let v: serde_json::Value = serde_json::from_str(&expected).unwrap();
        let first_ok = v["records"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["result"] == "Ok")
            .unwrap();
        assert_eq!(first_ok.get("metadata").is_some(), metadata, "{stream}");
        let answer = one.with_threads(4).handle_json(&bytes).await.unwrap();
        assert!(answer == expected, "{stream}");
    }
    // A stream that does not use the transform: every record fails, on any thread count.
    let bytes = with_arn_last(&plain, "someone-else");
    for threads in [1, 4] {
        let answer = FirehoseHandler::new::<TwoDeliveries, _, _>(TwoDeliveries::enrich())
            .unwrap()
            .with_threads(threads)
            .handle_json(&bytes)
            .await
            .unwrap();
        let kinds = results(&answer);
        assert_eq!(kinds.len(), 3_000);
        assert!(kinds.iter().all(|k| k == "ProcessingFailed"), "{threads}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_event_is_an_error_on_any_thread_count() {
    let mut bytes = event(3_000, 250);
    bytes.truncate(bytes.len() - 100);
    for threads in [1, 4] {
        let handler = FirehoseHandler::new::<Readings, _, _>(Readings::enrich())
            .unwrap()
            .with_threads(threads);
        let err = handler.handle_json(&bytes).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with("not a Firehose transformation event"),
            "{err}"
        );
    }
}

/// A small deterministic generator (xorshift), so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }

    /// Whitespace JSON allows between tokens: none, most of the time.
    fn ws(&mut self) -> &'static str {
        ["", "", "", " ", "\n  ", "\t", "\r\n"][self.below(7)]
    }
}

/// An event as Firehose could write it: keys in any order, whitespace anywhere, fields kpipe
/// does not read (nested objects and arrays among them), escapes in ids and data.
fn random_event(rng: &mut Rng, stream: &str) -> String {
    let records: Vec<String> = (0..rng.below(4_000))
        .map(|i| {
            let site = ["berlin", "oslo", "lis\"bon"][rng.below(3)];
            let reading = match rng.below(12) {
                0 => b"not json".to_vec(),
                1 => reading(&format!("test-{i}"), site, 1.0, "n"),
                _ => reading(&format!("s-{i}"), site, i as f64 / 3.0, &"n".repeat(rng.below(400))),
            };
            let mut data = base64::engine::general_purpose::STANDARD.encode(reading);
            if rng.below(5) == 0 && !data.is_empty() {
                // JSON may escape any character: the first one as `\u00XX`.
                data = format!("\\u{:04x}{}", data.as_bytes()[0], &data[1..]);
            }
            let id = match rng.below(6) {
                0 => format!("id-\\\"{i}\\u00e9\\n"),
                _ => format!("4954698668313554428650745793632162567570019247115{i:08}"),
            };
            let (w1, w2, w3) = (rng.ws(), rng.ws(), rng.ws());
            let mut fields = vec![
                format!("\"recordId\"{w1}:{w2}\"{id}\""),
                format!("\"approximateArrivalTimestamp\":{w3}1664028793294"),
                format!("\"data\":\"{data}\""),
            ];
            if rng.below(2) == 0 {
                fields.push(
                    r#""kinesisRecordMetadata":{"sequenceNumber":"4954","subsequenceNumber":0,"partitionKey":"},{\"recordId\"","shardId":"shardId-000000000000","approximateArrivalTimestamp":1664028793294}"#.into(),
                );
            }
            if rng.below(4) == 0 {
                fields.push(r#""unknown":[1,{"records":[{"recordId":"x"}]},"s",null,true,-1.5e3]"#.into());
            }
            rng.shuffle(&mut fields);
            let sep = format!(",{}", rng.ws());
            format!("{{{}{}{}}}", rng.ws(), fields.join(&sep), rng.ws())
        })
        .collect();
    let sep = format!(",{}", rng.ws());
    let mut top = vec![
        r#""invocationId":"00540a87-5050-496a-84e4-e7d92bbaf5e2""#.to_owned(),
        format!(
            "\"deliveryStreamArn\":\"arn:aws:firehose:us-west-2:123456789012:deliverystream/{stream}\""
        ),
        r#""region":"us-west-2""#.to_owned(),
        format!("\"records\":{}[{}]", rng.ws(), records.join(&sep)),
    ];
    rng.shuffle(&mut top);
    format!("{}{{{}}}{}", rng.ws(), top.join(&sep), rng.ws())
}

/// The response without empty `metadata` objects (`handle_json` leaves them out).
fn without_empty_metadata(mut v: serde_json::Value) -> serde_json::Value {
    for r in v["records"].as_array_mut().unwrap() {
        let r = r.as_object_mut().unwrap();
        if r.get("metadata") == Some(&serde_json::json!({ "partitionKeys": {} })) {
            r.remove("metadata");
        }
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_event_is_read_as_serde_json_reads_it() {
    // `handle_json` reads the event with kpipe's own reader, records handed out as they are read;
    // `handle` gets it from serde_json. Both must answer alike, on any thread count.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for case in 0..12 {
        let stream = ["to-lake", "to-archive"][case % 2];
        let text = random_event(&mut rng, stream);
        let parsed: kpipe_runtime::lambda::TransformationEvent =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("case {case}: {e}"));
        let handler = FirehoseHandler::new::<TwoDeliveries, _, _>(TwoDeliveries::enrich()).unwrap();
        let typed = serde_json::to_value(handler.handle(parsed).await).unwrap();
        let typed = without_empty_metadata(typed);
        for threads in [1, 3] {
            let raw = handler
                .clone()
                .with_threads(threads)
                .handle_json(text.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("case {case}, {threads} threads: {e}"));
            let raw: serde_json::Value = serde_json::from_str(&raw).unwrap();
            assert!(
                raw == typed,
                "case {case}, {threads} threads, {} bytes",
                text.len()
            );
        }
    }
}

/// A record whose partition key and `Serialize` impl panic for some values.
#[derive(Deserialize)]
struct Fragile {
    id: String,
    site: String,
}

impl Serialize for Fragile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(self.id != "panic-on-encode", "injected panic in Serialize");
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Fragile", 2)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("site", &self.site)?;
        st.end()
    }
}

fn fragile_site(f: &Fragile) -> String {
    assert!(
        f.site != "panic-in-key",
        "injected panic in a partition key"
    );
    f.site.clone()
}

fn pass_fragile(f: Fragile) -> Outcome<Fragile> {
    Outcome::Ok(f)
}

kpipe_runtime::pipeline! {
    pipeline FragileRecords {
        stream fragile: Fragile { capacity: provisioned(shards: 2), partition_key: id }
        transform pass_fragile: Fragile -> Fragile { function: crate::pass_fragile }
        s3 lake: Fragile {
            bucket: "acme-fragile",
            prefix: "site=!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |f: &Fragile| crate::fragile_site(f) },
        }
        delivery d: fragile -> pass_fragile -> lake;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_a_key_or_an_encoder_fails_only_its_record_on_any_thread_count() {
    let b64 = |d: &str| base64::engine::general_purpose::STANDARD.encode(d);
    // ~600 KB, so three threads get a run each.
    let records: Vec<serde_json::Value> = (0..6_000)
        .map(|i| {
            let (id, site) = match i % 1_000 {
                17 => ("panic-on-encode".to_owned(), "oslo"),
                500 => (format!("f-{i}"), "panic-in-key"),
                _ => (format!("f-{i}"), "lima"),
            };
            let data = b64(&format!(r#"{{"id":"{id}","site":"{site}","pad":"{}"}}"#, "p".repeat(40)));
            serde_json::json!({ "recordId": format!("r{i}"), "approximateArrivalTimestamp": 0, "data": data })
        })
        .collect();
    let bytes = serde_json::to_vec(&serde_json::json!({
        "deliveryStreamArn": "arn:aws:firehose:us-west-2:123456789012:deliverystream/d",
        "records": records,
    }))
    .unwrap();
    let mut answers = Vec::new();
    for threads in [1, 3] {
        let answer = FirehoseHandler::new::<FragileRecords, _, _>(FragileRecords::pass_fragile())
            .unwrap()
            .with_threads(threads)
            .handle_json(&bytes)
            .await
            .unwrap();
        let kinds = results(&answer);
        let failed: Vec<usize> = kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| *k != "Ok")
            .map(|(i, _)| i)
            .collect();
        let expected: Vec<usize> = (0..6_000)
            .filter(|i| [17, 500].contains(&(i % 1_000)))
            .collect();
        assert_eq!(failed, expected, "{threads} threads");
        answers.push(answer);
    }
    assert!(answers[0] == answers[1]);
}
