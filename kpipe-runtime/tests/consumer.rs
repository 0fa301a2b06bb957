//! Consumers: the Kinesis handler on AWS's event shape (AWS Lambda, Using Lambda with Kinesis Data Streams: <https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html>), with partial
//! batch responses (`batchItemFailures`), and the consumer's type checking at run time.

use aws_lambda_events::streams::KinesisEventResponse;
use base64::Engine as _;
use kpipe_runtime::lambda::{ConsumerHandler, KinesisStreamEvent, LambdaError};
use kpipe_runtime::{Pipeline, spec::StartingPosition};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;

#[derive(Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
}

/// What the consumer saw, in order (the tests run one at a time through `LOCK`).
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn frost_alert(r: Reading) -> Result<(), String> {
    if r.sensor_id == "panic" {
        panic!("boom");
    }
    if r.celsius < -273.15 {
        return Err(format!("implausible temperature {} °C", r.celsius));
    }
    SEEN.lock().unwrap().push(r.sensor_id);
    Ok(())
}

async fn count_async(r: Reading) {
    SEEN.lock().unwrap().push(format!("async {}", r.sensor_id));
}

/// Readings per site, per tumbling window.
#[derive(Default, Serialize, Deserialize)]
struct SiteCounts {
    counts: std::collections::BTreeMap<String, u64>,
}

/// The windows closed: start and end (ms), shard, counts.
static CLOSED: Mutex<Vec<(i64, i64, String, String)>> = Mutex::new(Vec::new());

impl kpipe_runtime::Aggregate for SiteCounts {
    type Record = Reading;
    type Error = String;

    fn add(&mut self, r: Reading) -> Result<(), String> {
        if r.celsius < -273.15 {
            return Err(format!("implausible temperature {} °C", r.celsius));
        }
        *self.counts.entry(r.site).or_default() += 1;
        Ok(())
    }

    async fn close(self, w: kpipe_runtime::Window) -> Result<(), String> {
        let counts = serde_json::to_string(&self.counts).unwrap();
        CLOSED
            .lock()
            .unwrap()
            .push((w.start_ms, w.end_ms, w.shard_id, counts));
        Ok(())
    }
}

kpipe_runtime::pipeline! {
    pipeline Telemetry {
        stream readings: Reading { name: "sensor-readings", capacity: provisioned(shards: 2), partition_key: sensor_id }
        consumer frost_alerts: readings -> crate::frost_alert {
            batch_size: 500,
            starting_position: trim_horizon,
            bisect_on_error: true,
            maximum_retries: 2,
        }
        consumer counter: readings -> crate::count_async { starting_position: latest }
        consumer site_counts: readings -> crate::SiteCounts {
            starting_position: latest,
            tumbling_window: 300s,
        }
    }
}

fn event(path: &str) -> KinesisStreamEvent {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn failures(r: &KinesisEventResponse) -> Vec<String> {
    r.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect()
}

fn seen() -> Vec<String> {
    std::mem::take(&mut *SEEN.lock().unwrap())
}

#[test]
fn the_spec_has_the_mapping_settings_and_aws_defaults() {
    let c = Telemetry::frost_alerts();
    let s = c.spec();
    assert_eq!(
        (s.stream, s.function, s.batch_size, s.starting_position),
        (
            "readings",
            "crate::frost_alert",
            500,
            StartingPosition::TrimHorizon
        )
    );
    assert_eq!((s.bisect_on_error, s.maximum_retries), (true, Some(2)));
    assert_eq!(s.lambda.name, "telemetry-frost-alerts");
    let d = Telemetry::spec().consumer("counter").unwrap();
    assert_eq!(
        (
            d.batch_size,
            d.maximum_retries,
            d.batch_window_secs,
            d.parallelization
        ),
        (100, None, 0, 1)
    );
    assert_eq!(d.starting_position.aws_name(), "LATEST");
    assert_eq!(Telemetry::consumers().len(), 3);
    assert_eq!(
        Telemetry::spec().consumers[2].tumbling_window_secs,
        Some(300)
    );
}

#[tokio::test]
async fn a_batch_that_succeeds_reports_no_failures() {
    let _guard = LOCK.lock().await;
    seen();
    let handler = ConsumerHandler::new::<Telemetry, _>(Telemetry::frost_alerts()).unwrap();
    let response = handler.handle(event("kinesis-event.json")).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(seen(), ["s-001", "s-002"]);
    // AWS reads an empty list as "the whole batch succeeded".
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({ "batchItemFailures": [] })
    );
}

#[tokio::test]
async fn the_first_failure_is_reported_and_the_rest_left_for_the_retry() {
    let _guard = LOCK.lock().await;
    seen();
    let handler = ConsumerHandler::new::<Telemetry, _>(Telemetry::frost_alerts()).unwrap();
    let response = handler
        .handle(event("kinesis-event-with-failure.json"))
        .await;
    // The second record fails: Lambda checkpoints before it and retries from it, so the third
    // (valid) and fourth (not JSON) are not consumed now.
    assert_eq!(
        failures(&response),
        ["49590338271490256608559692538361571095921575989136588802"]
    );
    assert_eq!(seen(), ["s-001"]);
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        serde_json::json!({ "batchItemFailures": [
            { "itemIdentifier": "49590338271490256608559692538361571095921575989136588802" }
        ] })
    );
}

fn one(seq: &str, data: &[u8]) -> KinesisStreamEvent {
    serde_json::from_value(serde_json::json!({ "Records": [{
        "eventID": format!("shardId-000000000000:{seq}"),
        "eventSourceARN": "arn:aws:kinesis:us-west-2:123456789012:stream/sensor-readings",
        "kinesis": {
            "partitionKey": "k",
            "sequenceNumber": seq,
            "data": base64::engine::general_purpose::STANDARD.encode(data),
        }
    }]}))
    .unwrap()
}

#[tokio::test]
async fn bad_base64_other_types_and_panics_fail_their_record_only() {
    let _guard = LOCK.lock().await;
    let handler = ConsumerHandler::new::<Telemetry, _>(Telemetry::frost_alerts()).unwrap();
    let mut bad_base64 = one("1", b"x");
    bad_base64.records[0].kinesis.data = "%%%".into();
    for (event, seq) in [
        (bad_base64, "1"),
        (one("2", b"{\"sensor_id\": 7}"), "2"),
        (
            one("3", br#"{"sensor_id":"panic","site":"x","celsius":1}"#),
            "3",
        ),
    ] {
        assert_eq!(failures(&handler.handle(event).await), [seq]);
    }
    // An empty batch is a success.
    let empty = handler.handle(KinesisStreamEvent::default()).await;
    assert!(empty.batch_item_failures.is_empty());
}

#[tokio::test]
async fn kpl_aggregates_are_consumed_record_by_record() {
    let _guard = LOCK.lock().await;
    seen();
    let handler = ConsumerHandler::new::<Telemetry, _>(Telemetry::counter()).unwrap();
    let records: Vec<(String, Vec<u8>)> = ["a", "b", "c"]
        .iter()
        .map(|id| {
            (
                (*id).to_owned(),
                format!(r#"{{"sensor_id":"{id}","site":"x","celsius":1}}"#).into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = records
        .iter()
        .map(|(k, d)| (k.as_str(), d.as_slice()))
        .collect();
    let aggregate = kpipe_runtime::kpl::aggregate(&refs);
    let response = handler.handle(one("9", &aggregate)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(seen(), ["async a", "async b", "async c"]);
}

kpipe_runtime::pipeline! {
    /// A consumer of the same name in another pipeline.
    pipeline Other {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        consumer frost_alerts: readings -> crate::frost_alert { starting_position: latest }
    }
}

/// Another pipeline's consumer, even one of the same name, is refused.
#[test]
fn unknown_consumers_are_errors() {
    assert!(matches!(
        ConsumerHandler::new::<Telemetry, _>(Other::frost_alerts()),
        Err(LambdaError::UnknownConsumer(_))
    ));
}

/// A tumbling-window event as Lambda sends it: the records, the window, the state the last
/// invocation returned.
fn windowed(records: &[(&str, &str)], state: serde_json::Value, last: bool) -> KinesisStreamEvent {
    let records: Vec<serde_json::Value> = records
        .iter()
        .map(|(seq, site)| {
            let celsius = if *site == "bad" { -300.0 } else { 1.0 };
            let data = format!(r#"{{"sensor_id":"s","site":"{site}","celsius":{celsius}}}"#);
            serde_json::json!({
                "eventID": format!("shardId-000000000003:{seq}"),
                "kinesis": {
                    "partitionKey": "k",
                    "sequenceNumber": seq,
                    "data": base64::engine::general_purpose::STANDARD.encode(data),
                }
            })
        })
        .collect();
    serde_json::from_value(serde_json::json!({
        "Records": records,
        "window": { "start": "2026-12-01T10:00:00Z", "end": "2026-12-01T10:05:00Z" },
        "state": state,
        "shardId": "shardId-000000000003",
        "eventSourceARN": "arn:aws:kinesis:us-west-2:123456789012:stream/sensor-readings",
        "isFinalInvokeForWindow": last,
        "isWindowTerminatedEarly": false,
    }))
    .unwrap()
}

/// The tumbling-window handler carries the aggregate from invocation to invocation as the
/// returned `state`, stops at a failing record with the state from before it, and on the
/// window's final invocation calls `close` with the window and returns an empty state.
#[tokio::test]
async fn a_tumbling_window_handler_returns_the_state_and_closes_the_window() {
    let _guard = LOCK.lock().await;
    let handler = ConsumerHandler::new::<Telemetry, _>(Telemetry::site_counts()).unwrap();
    assert!(handler.is_windowed());
    let first = handler
        .handle_window(windowed(
            &[("1", "oslo"), ("2", "lima")],
            serde_json::Value::Null,
            false,
        ))
        .await
        .unwrap();
    assert!(first.batch_item_failures.is_empty());
    assert_eq!(
        first.state,
        serde_json::json!({ "counts": { "lima": 1, "oslo": 1 } })
    );

    let second = handler
        .handle_window(windowed(
            &[("3", "oslo"), ("4", "bad"), ("5", "lima")],
            first.state,
            false,
        ))
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(&second).unwrap(),
        serde_json::json!({
            "state": { "counts": { "lima": 1, "oslo": 2 } },
            "batchItemFailures": [{ "itemIdentifier": "4" }]
        })
    );

    let last = handler
        .handle_window(windowed(&[], second.state, true))
        .await
        .unwrap();
    assert_eq!(last.state, serde_json::json!({}));
    let closed = CLOSED.lock().unwrap().clone();
    assert_eq!(
        closed,
        [(
            1_796_119_200_000,
            1_796_119_500_000,
            "shardId-000000000003".to_owned(),
            r#"{"lima":1,"oslo":2}"#.to_owned()
        )]
    );
    // A state that is not the aggregate's fails the invocation (Lambda retries it).
    assert!(
        handler
            .handle_window(windowed(&[], serde_json::json!({ "counts": 7 }), false))
            .await
            .is_err()
    );
}
