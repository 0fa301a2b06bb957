//! The generated Firehose handler against a hand-written `aws_lambda_events` handler doing the
//! same work on the same 6.3 MB event (bytes in, bytes out: parse the event, base64-decode,
//! parse the reading, convert Celsius to Fahrenheit, encode, base64-encode, serialise the
//! response). Target: at most 1.1x. Results go to BENCHMARKS.md; the Python blueprint's time on
//! the same event comes from `scripts/bench-python-blueprint.py`.
//!
//! Then the generated Kinesis consumer handler against a hand-written one on aws_lambda_events'
//! `KinesisEvent`, on an 8,000-record Kinesis event of 5.8 MB, under Lambda's 6 MB (parse the
//! event, base64-decode, parse the reading, call the function, serialise the partial batch
//! response). Target: at most 1.0x.

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

// The allocator of a Lambda binary (`lambda_main!`), so that the binary path is the binary's;
// the hand-written handlers measured alongside get it too.
#[global_allocator]
static ALLOCATOR: kpipe_runtime::lambda::Allocator = kpipe_runtime::lambda::Allocator;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseResponse, KinesisFirehoseResponseRecord,
};
use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kpipe_runtime::Outcome;
use kpipe_runtime::lambda::{FirehoseHandler, TransformationEvent};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
    at_ms: u64,
    note: String,
}

#[derive(Serialize, Deserialize)]
struct Enriched {
    sensor_id: String,
    site: String,
    fahrenheit: f64,
    at_ms: u64,
    note: String,
}

/// The consumer: counts freezing readings (a side effect the optimiser cannot drop).
fn freezing(r: Reading) -> Result<(), String> {
    if r.celsius < -273.15 {
        return Err(format!("implausible {} °C", r.celsius));
    }
    if r.celsius < 0.5 {
        FREEZING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(())
}

static FREEZING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn enrich(r: Reading) -> Outcome<Enriched> {
    Outcome::Ok(Enriched {
        sensor_id: r.sensor_id,
        site: r.site,
        fahrenheit: r.celsius * 1.8 + 32.0,
        at_ms: r.at_ms,
        note: r.note,
    })
}

kpipe_runtime::pipeline! {
    pipeline Bench {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich }
        s3 lake: Enriched { bucket: "bench-lake" }
        delivery d: readings -> enrich -> lake;
        consumer freeze: readings -> crate::freezing { starting_position: latest }
    }
}

/// A Kinesis event of `records` readings, as an event source mapping sends it.
fn kinesis_event_bytes(records: usize) -> Vec<u8> {
    let recs: Vec<serde_json::Value> = (0..records)
        .map(|i| {
            let r = Reading {
                sensor_id: format!("sensor-{:05}", i % 5000),
                site: ["berlin", "oslo", "lisbon"][i % 3].into(),
                celsius: (i % 400) as f64 / 10.0,
                at_ms: 1_795_766_400_000 + i as u64,
                note: "calibrated 2026-10-01 by the field team; housing ok".into(),
            };
            let seq = format!("4959033827149025660855969253836157109592157598913658{i:04}");
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r.sensor_id,
                    "sequenceNumber": seq,
                    "data": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&r).unwrap()),
                    "approximateArrivalTimestamp": 1_795_766_400.123,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("shardId-000000000000:{seq}"),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": "arn:aws:iam::123456789012:role/bench",
                "awsRegion": "us-west-2",
                "eventSourceARN": "arn:aws:kinesis:us-west-2:123456789012:stream/readings",
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": recs })).unwrap()
}

/// The consumer baseline: aws_lambda_events' `KinesisEvent` (which base64-decodes `data`),
/// each reading parsed and consumed, the partial batch response serialised.
fn hand_written_consumer(event: &[u8]) -> Vec<u8> {
    let event: aws_lambda_events::kinesis::KinesisEvent = serde_json::from_slice(event).unwrap();
    let mut response = aws_lambda_events::streams::KinesisEventResponse::default();
    for r in event.records {
        let ok = serde_json::from_slice::<Reading>(&r.kinesis.data.0)
            .map_err(|e| e.to_string())
            .and_then(freezing);
        if ok.is_err() {
            let mut failure = aws_lambda_events::streams::KinesisBatchItemFailure::default();
            failure.item_identifier = Some(r.kinesis.sequence_number);
            response.batch_item_failures.push(failure);
            break;
        }
    }
    serde_json::to_vec(&response).unwrap()
}

/// The generated consumer handler, bytes in and out as lambda_runtime gives them.
fn kpipe_consumer(
    handler: &kpipe_runtime::lambda::ConsumerHandler,
    rt: &tokio::runtime::Runtime,
    event: &[u8],
) -> Vec<u8> {
    let event: kpipe_runtime::lambda::KinesisStreamEvent = serde_json::from_slice(event).unwrap();
    serde_json::to_vec(&rt.block_on(handler.handle(event))).unwrap()
}

/// The event, as the bytes Lambda hands the runtime.
pub fn event_bytes(records: usize) -> Vec<u8> {
    let recs: Vec<serde_json::Value> = (0..records)
        .map(|i| {
            let r = Reading {
                sensor_id: format!("sensor-{:05}", i % 5000),
                site: ["berlin", "oslo", "lisbon"][i % 3].into(),
                celsius: (i % 400) as f64 / 10.0,
                at_ms: 1_795_766_400_000 + i as u64,
                note: "calibrated 2026-10-01 by the field team; housing ok".into(),
            };
            serde_json::json!({
                "recordId": format!("4954698668313554428650745793632162567570019247115678{i:04}"),
                "approximateArrivalTimestamp": 1_795_766_400_000i64,
                "data": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&r).unwrap()),
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "invocationId": "bench",
        "deliveryStreamArn": "arn:aws:firehose:us-west-2:123456789012:deliverystream/d",
        "region": "us-west-2",
        "records": recs,
    }))
    .unwrap()
}

/// The baseline: a hand-written handler on aws_lambda_events' types.
fn hand_written(event: &[u8]) -> Vec<u8> {
    let event: KinesisFirehoseEvent = serde_json::from_slice(event).unwrap();
    let mut response = KinesisFirehoseResponse::default();
    for rec in event.records {
        let mut out = KinesisFirehoseResponseRecord::default();
        out.record_id = rec.record_id;
        match serde_json::from_slice::<Reading>(&rec.data.0) {
            Ok(r) => {
                let Outcome::Ok(e) = enrich(r) else {
                    unreachable!("enrich never drops here")
                };
                let mut data = serde_json::to_vec(&e).unwrap();
                data.push(b'\n');
                let mut d = Base64Data::default();
                d.0 = data;
                out.data = d;
                out.result = Some("Ok".into());
            }
            Err(_) => out.result = Some("ProcessingFailed".into()),
        }
        response.records.push(out);
    }
    serde_json::to_vec(&response).unwrap()
}

/// The handler: event bytes in, response text out.
fn kpipe(handler: &FirehoseHandler, rt: &tokio::runtime::Runtime, event: &[u8]) -> String {
    rt.block_on(handler.handle_json(event)).unwrap()
}

/// What the Lambda binary does per invocation (`lambda::serve`) between receiving the event's
/// bytes and sending the response's: the handler, then its text's pieces made the request's
/// body (not joined).
fn binary_path(
    handler: &FirehoseHandler,
    rt: &tokio::runtime::Runtime,
    event: &[u8],
) -> lambda_runtime_api_client::body::Body {
    let text = rt.block_on(handler.handle_json_text(event)).unwrap();
    lambda_runtime_api_client::body::Body::from(text)
}

/// What the binary did before it answered invocations itself: the handler, then the response
/// through lambda_runtime's own path (a `RawValue`, which checks the JSON, serialised).
fn through_raw_value(
    handler: &FirehoseHandler,
    rt: &tokio::runtime::Runtime,
    event: &[u8],
) -> Vec<u8> {
    let text = kpipe(handler, rt, event);
    let raw = serde_json::value::RawValue::from_string(text).unwrap();
    serde_json::to_vec(&raw).unwrap()
}

/// The typed path (`FirehoseHandler::handle` on parsed events), for comparison.
fn kpipe_typed(handler: &FirehoseHandler, rt: &tokio::runtime::Runtime, event: &[u8]) -> Vec<u8> {
    let event: TransformationEvent = serde_json::from_slice(event).unwrap();
    let response = rt.block_on(handler.handle(event));
    serde_json::to_vec(&response).unwrap()
}

fn bench(c: &mut Criterion) {
    let event = event_bytes(20_000);
    println!("event: {} records, {} bytes", 20_000, event.len());
    let handler = FirehoseHandler::new::<Bench, _, _>(Bench::enrich()).unwrap();
    println!("kpipe handler threads: {}", handler.threads());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Both produce the same response.
    let a: serde_json::Value = serde_json::from_slice(&hand_written(&event)).unwrap();
    let b: serde_json::Value =
        serde_json::from_slice(&through_raw_value(&handler, &rt, &event)).unwrap();
    // The same answers; kpipe's raw response leaves out the empty `metadata` objects that
    // aws_lambda_events writes (which put this event's response over Lambda's 6 MB).
    let all_ok = |v: &serde_json::Value| {
        v["records"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["result"] == "Ok")
    };
    assert!(all_ok(&b), "every record fits in kpipe's response");
    for i in [0, 7, 19_999] {
        assert_eq!(a["records"][i]["data"], b["records"][i]["data"]);
        assert_eq!(a["records"][i]["recordId"], b["records"][i]["recordId"]);
    }
    assert!(b["records"][7].get("metadata").is_none());
    println!(
        "response: kpipe {} bytes, hand-written {} bytes",
        kpipe(&handler, &rt, &event).len(),
        hand_written(&event).len()
    );
    assert_eq!(
        a["records"].as_array().unwrap().len(),
        b["records"].as_array().unwrap().len()
    );
    if let Ok(path) = std::env::var("KPIPE_WRITE_EVENT") {
        std::fs::write(path, &event).unwrap();
    }
    let mut g = c.benchmark_group("firehose_handler");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(event.len() as u64));
    g.bench_function("hand_written_aws_lambda_events", |b| {
        b.iter(|| hand_written(&event))
    });
    g.bench_function("kpipe_generated", |b| {
        b.iter(|| kpipe(&handler, &rt, &event))
    });
    g.bench_function("kpipe_binary_path", |b| {
        b.iter(|| binary_path(&handler, &rt, &event))
    });
    g.bench_function("lambda_runtime_parse_into_raw_value", |b| {
        b.iter(|| {
            let raw: Box<serde_json::value::RawValue> = serde_json::from_slice(&event).unwrap();
            raw.get().len()
        })
    });
    let one_thread = handler.clone().with_threads(1);
    g.bench_function("kpipe_generated_one_thread", |b| {
        b.iter(|| kpipe(&one_thread, &rt, &event))
    });
    g.bench_function("kpipe_binary_path_one_thread", |b| {
        b.iter(|| binary_path(&one_thread, &rt, &event))
    });
    g.bench_function("through_lambda_runtime_raw_value_one_thread", |b| {
        b.iter(|| through_raw_value(&one_thread, &rt, &event))
    });
    g.bench_function("kpipe_typed_response", |b| {
        b.iter(|| kpipe_typed(&handler, &rt, &event))
    });
    g.finish();
}

fn bench_consumer(c: &mut Criterion) {
    let event = kinesis_event_bytes(8_000);
    println!("kinesis event: {} records, {} bytes", 8_000, event.len());
    let handler = kpipe_runtime::lambda::ConsumerHandler::new::<Bench, _>(Bench::freeze()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The same answer: every record consumed, the same freezing readings counted.
    FREEZING.store(0, std::sync::atomic::Ordering::Relaxed);
    let a = hand_written_consumer(&event);
    let by_hand = FREEZING.swap(0, std::sync::atomic::Ordering::Relaxed);
    let b = kpipe_consumer(&handler, &rt, &event);
    assert_eq!(
        by_hand,
        FREEZING.swap(0, std::sync::atomic::Ordering::Relaxed)
    );
    assert!(by_hand > 0);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&a).unwrap(),
        serde_json::from_slice::<serde_json::Value>(&b).unwrap()
    );
    let mut g = c.benchmark_group("kinesis_consumer");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(event.len() as u64));
    g.bench_function("hand_written_aws_lambda_events", |b| {
        b.iter(|| hand_written_consumer(&event))
    });
    g.bench_function("kpipe_generated", |b| {
        b.iter(|| kpipe_consumer(&handler, &rt, &event))
    });
    g.finish();
}

criterion_group!(benches, bench, bench_consumer);
criterion_main!(benches);
