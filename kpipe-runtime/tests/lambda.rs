//! The Firehose handler on AWS's documented event shapes (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>), and parity with
//! the local engine: the same records give the same results, outputs and partition keys.

use aws_lambda_events::firehose::KinesisFirehoseResponse;
use kpipe_runtime::Outcome;
use kpipe_runtime::engine::LocalInvoker;
use kpipe_runtime::firehose::{BatchRecord, Invoker};
use kpipe_runtime::lambda::{FirehoseHandler, MAX_RESPONSE_BYTES, TransformationEvent};
use kpipe_runtime::{Pipeline, RecordResult};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
}

#[derive(Serialize, Deserialize)]
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
        return Outcome::failed("implausible");
    }
    Outcome::Ok(Enriched {
        sensor_id: r.sensor_id,
        site: r.site,
        fahrenheit: r.celsius * 1.8 + 32.0,
    })
}

kpipe_runtime::pipeline! {
    pipeline Telemetry {
        stream readings: Reading { name: "sensor-readings", capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich }
        s3 lake: Enriched {
            bucket: "acme-telemetry",
            prefix: "site=!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |e: &Enriched| e.site.clone() },
        }
        delivery sensor_lake: readings -> enrich -> lake;
    }
    /// The same transform name in another pipeline, and a transform no delivery uses.
    pipeline Other {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich }
        transform unused: Reading -> Enriched { function: crate::enrich }
        s3 lake: Enriched { bucket: "acme-other" }
        delivery d: readings -> enrich -> lake;
    }
}

fn event(path: &str) -> TransformationEvent {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(path),
    )
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn results(r: &KinesisFirehoseResponse) -> Vec<(String, String)> {
    r.records
        .iter()
        .map(|x| (x.record_id.clone().unwrap(), x.result.clone().unwrap()))
        .collect()
}

#[tokio::test]
async fn kinesis_source_event_with_record_metadata() {
    let handler = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).unwrap();
    let response = handler.handle(event("firehose-kinesis-source.json")).await;
    let r = results(&response);
    assert_eq!(
        r.iter().map(|x| x.1.as_str()).collect::<Vec<_>>(),
        ["Ok", "Dropped", "ProcessingFailed"]
    );
    assert_eq!(
        r[0].0, "49546986683135544286507457936321625675700192471156785154",
        "ids are echoed"
    );
    let ok = &response.records[0];
    assert_eq!(
        String::from_utf8(ok.data.0.clone()).unwrap(),
        "{\"sensor_id\":\"s-1\",\"site\":\"berlin\",\"fahrenheit\":212.0}\n"
    );
    assert_eq!(
        ok.metadata.partition_keys.get("site").map(String::as_str),
        Some("berlin")
    );
    // The response serialises the way Firehose expects (Amazon Data Firehose, Data transformation and status model: https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html).
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["records"][0]["result"], "Ok");
    assert_eq!(
        json["records"][0]["metadata"]["partitionKeys"]["site"],
        "berlin"
    );
    assert!(
        json["records"][0]["data"]
            .as_str()
            .unwrap()
            .starts_with("eyJzZW5zb3JfaWQi")
    );
}

#[tokio::test]
async fn direct_put_event_with_bad_records_fails_only_those() {
    let handler = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).unwrap();
    let response = handler.handle(event("firehose-direct-put.json")).await;
    assert_eq!(
        results(&response),
        [
            ("1".into(), "Ok".into()),
            ("2".into(), "ProcessingFailed".into()),
            ("3".into(), "ProcessingFailed".into())
        ]
    );
}

#[tokio::test]
async fn an_empty_batch_gets_an_empty_response() {
    let handler = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).unwrap();
    let response = handler.handle(TransformationEvent::default()).await;
    assert!(response.records.is_empty());
    assert_eq!(
        serde_json::to_string(&response).unwrap(),
        "{\"records\":[]}"
    );
}

#[tokio::test]
async fn a_6_mb_batch_keeps_the_response_under_the_limit() {
    use base64::Engine as _;
    // ~6.5 MB of output: the records that do not fit are answered ProcessingFailed.
    let padding = "x".repeat(4000);
    let records: Vec<serde_json::Value> = (0..1200)
        .map(|i| {
            let data =
                format!("{{\"sensor_id\":\"s-{i}\",\"site\":\"{padding}\",\"celsius\":1.0}}");
            serde_json::json!({ "recordId": i.to_string(), "approximateArrivalTimestamp": 0,
                                "data": base64::engine::general_purpose::STANDARD.encode(data) })
        })
        .collect();
    let ev: TransformationEvent =
        serde_json::from_value(serde_json::json!({ "records": records })).unwrap();
    let handler = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).unwrap();
    let response = handler.handle(ev).await;
    let body = serde_json::to_vec(&response).unwrap();
    assert!(body.len() <= MAX_RESPONSE_BYTES, "{} bytes", body.len());
    assert_eq!(response.records.len(), 1200, "every id is answered");
    let failed = response
        .records
        .iter()
        .filter(|r| r.result.as_deref() == Some("ProcessingFailed"))
        .count();
    assert!(failed > 0 && failed < 1200, "{failed}");

    // The raw path (what the Lambda binary answers) packs the same event tightly: under the
    // limit, and with less room left than one more record's output would take.
    let bytes =
        serde_json::to_vec(&serde_json::json!({ "records": records_json(&padding) })).unwrap();
    let raw = handler.handle_json(&bytes).await.unwrap();
    assert!(raw.len() <= MAX_RESPONSE_BYTES, "{} bytes", raw.len());
    let parsed: serde_json::Value = serde_json::from_str(&raw).unwrap();
    let ok = parsed["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["result"] == "Ok")
        .count();
    assert!(ok < 1200);
    assert!(
        MAX_RESPONSE_BYTES - raw.len() < 5600,
        "{} bytes left",
        MAX_RESPONSE_BYTES - raw.len()
    );
}

fn records_json(padding: &str) -> Vec<serde_json::Value> {
    use base64::Engine as _;
    (0..1200)
        .map(|i| {
            let data =
                format!("{{\"sensor_id\":\"s-{i}\",\"site\":\"{padding}\",\"celsius\":1.0}}");
            serde_json::json!({ "recordId": i.to_string(), "approximateArrivalTimestamp": 0,
                                "data": base64::engine::general_purpose::STANDARD.encode(data) })
        })
        .collect()
}

/// A handler is made from a transform handle: another pipeline's transform (even one of the
/// same name) and a transform no delivery uses are refused.
#[test]
fn unknown_transforms_are_refused() {
    assert!(FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).is_ok());
    for refused in [
        FirehoseHandler::new::<Telemetry, _, _>(Other::enrich()),
        FirehoseHandler::new::<Other, _, _>(Other::unused()),
    ] {
        assert!(
            matches!(
                refused,
                Err(kpipe_runtime::lambda::LambdaError::UnknownTransform(_))
            ),
            "{refused:?}"
        );
    }
}

#[tokio::test]
async fn the_handler_and_the_local_engine_agree() {
    use base64::Engine as _;
    let inputs: Vec<Vec<u8>> = vec![
        serde_json::to_vec(&Reading {
            sensor_id: "s-1".into(),
            site: "berlin".into(),
            celsius: 3.0,
        })
        .unwrap(),
        serde_json::to_vec(&Reading {
            sensor_id: "test-1".into(),
            site: "lab".into(),
            celsius: 3.0,
        })
        .unwrap(),
        serde_json::to_vec(&Reading {
            sensor_id: "s-2".into(),
            site: "oslo".into(),
            celsius: -500.0,
        })
        .unwrap(),
        serde_json::to_vec(&Reading {
            sensor_id: "panic".into(),
            site: "x".into(),
            celsius: 1.0,
        })
        .unwrap(),
        b"{\"broken".to_vec(),
        serde_json::to_vec(&Reading {
            sensor_id: "s-3".into(),
            site: "lisbon".into(),
            celsius: 40.0,
        })
        .unwrap(),
    ];
    // The local engine's invocation of the transform.
    let batch: Vec<BatchRecord> = inputs
        .iter()
        .enumerate()
        .map(|(i, d)| BatchRecord {
            record_id: i.to_string(),
            arrival_ms: 0,
            data: d.clone().into(),
        })
        .collect();
    let local = LocalInvoker::new(Telemetry::sensor_lake().processor().clone())
        .invoke(&batch)
        .await
        .unwrap();
    // The Lambda handler on the same records.
    let records: Vec<serde_json::Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, d)| serde_json::json!({ "recordId": i.to_string(), "approximateArrivalTimestamp": 0,
                                          "data": base64::engine::general_purpose::STANDARD.encode(d) }))
        .collect();
    let ev: TransformationEvent = serde_json::from_value(serde_json::json!({
        "deliveryStreamArn": "arn:aws:firehose:us-west-2:123456789012:deliverystream/sensor-lake",
        "records": records
    }))
    .unwrap();
    let lambda = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich())
        .unwrap()
        .handle(ev)
        .await;
    assert_eq!(local.len(), lambda.records.len());
    for (l, a) in local.iter().zip(&lambda.records) {
        assert_eq!(Some(&l.record_id), a.record_id.as_ref());
        match &l.result {
            RecordResult::Ok {
                data,
                partition_keys,
            } => {
                assert_eq!(a.result.as_deref(), Some("Ok"));
                assert_eq!(data, &a.data.0);
                let keys: std::collections::HashMap<String, String> = partition_keys
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.clone()))
                    .collect();
                assert_eq!(keys, a.metadata.partition_keys);
            }
            RecordResult::Dropped => assert_eq!(a.result.as_deref(), Some("Dropped")),
            RecordResult::Failed(_) => assert_eq!(a.result.as_deref(), Some("ProcessingFailed")),
        }
    }
    let kinds: Vec<&str> = lambda
        .records
        .iter()
        .map(|r| r.result.as_deref().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "Ok",
            "Dropped",
            "ProcessingFailed",
            "ProcessingFailed",
            "ProcessingFailed",
            "Ok"
        ]
    );
    assert_eq!(<Telemetry as Pipeline>::SPEC.transforms[0].id, "enrich");
}

#[tokio::test]
async fn kpl_aggregates_are_deaggregated() {
    use base64::Engine as _;
    let r = |id: &str, site: &str| {
        serde_json::to_vec(&Reading {
            sensor_id: id.into(),
            site: site.into(),
            celsius: 0.0,
        })
        .unwrap()
    };
    let (a, b, test) = (
        r("s-1", "berlin"),
        r("s-2", "berlin"),
        r("test-1", "berlin"),
    );
    let same_site = kpipe_runtime::kpl::aggregate(&[("s-1", &a), ("test-1", &test), ("s-2", &b)]);
    let mixed = kpipe_runtime::kpl::aggregate(&[("s-1", &a), ("s-3", &r("s-3", "oslo"))]);
    let enc = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let ev: TransformationEvent = serde_json::from_value(serde_json::json!({ "records": [
        { "recordId": "agg-1", "approximateArrivalTimestamp": 0, "data": enc(&same_site) },
        { "recordId": "agg-2", "approximateArrivalTimestamp": 0, "data": enc(&mixed) },
    ]}))
    .unwrap();
    let response = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich())
        .unwrap()
        .handle(ev)
        .await;
    assert_eq!(response.records[0].result.as_deref(), Some("Ok"));
    let lines = String::from_utf8(response.records[0].data.0.clone()).unwrap();
    assert_eq!(
        lines.lines().count(),
        2,
        "two user records transformed, the test rig dropped: {lines}"
    );
    assert_eq!(
        response.records[1].result.as_deref(),
        Some("ProcessingFailed"),
        "two partitions in one record"
    );
}

/// The response without empty `metadata` objects (the raw path leaves them out).
fn without_empty_metadata(mut v: serde_json::Value) -> serde_json::Value {
    for r in v["records"].as_array_mut().unwrap() {
        let r = r.as_object_mut().unwrap();
        if r.get("metadata") == Some(&serde_json::json!({ "partitionKeys": {} })) {
            r.remove("metadata");
        }
    }
    v
}

#[tokio::test]
async fn the_raw_json_path_answers_exactly_as_the_typed_one() {
    let handler = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).unwrap();
    for fixture in ["firehose-kinesis-source.json", "firehose-direct-put.json"] {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(fixture),
        )
        .unwrap();
        let raw: serde_json::Value =
            serde_json::from_str(&handler.handle_json(&bytes).await.unwrap()).unwrap();
        let typed = serde_json::to_value(handler.handle(event(fixture)).await).unwrap();
        assert_eq!(raw, without_empty_metadata(typed), "{fixture}");
    }
    // Ids with escapes, bad base64 and an unknown delivery stream.
    let tricky = br#"{"deliveryStreamArn":"arn:aws:firehose:us-west-2:1:deliverystream/sensor-lake",
        "records":[{"recordId":"a\"b\\c","data":"%%%"},
                   {"recordId":"ok","data":"eyJzZW5zb3JfaWQiOiJzLTEiLCJzaXRlIjoib3NsbyIsImNlbHNpdXMiOjF9"}]}"#;
    let raw: serde_json::Value =
        serde_json::from_str(&handler.handle_json(tricky).await.unwrap()).unwrap();
    let parsed: TransformationEvent = serde_json::from_slice(tricky).unwrap();
    let typed = serde_json::to_value(handler.handle(parsed).await).unwrap();
    assert_eq!(raw, without_empty_metadata(typed));
    assert!(raw["records"][0].get("metadata").is_none());
    assert_eq!(raw["records"][0]["recordId"], "a\"b\\c");
    assert_eq!(raw["records"][0]["result"], "ProcessingFailed");
    assert_eq!(raw["records"][1]["result"], "Ok");
    assert_eq!(
        raw["records"][1]["metadata"]["partitionKeys"]["site"],
        "oslo"
    );
    assert!(handler.handle_json(b"not json").await.is_err());
}

/// Events nested 20,000 deep (about 40 KB) anywhere are refused, on a test thread's ordinary
/// stack, without overflowing it: the Firehose handler's event reader skips unknown values to
/// a depth of 32; the Kinesis consumer's event goes through serde_json (as lambda_runtime
/// parses it).
#[tokio::test]
async fn deeply_nested_events_are_errors_not_stack_overflows() {
    let deep = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    let handler = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).unwrap();
    let arn = "arn:aws:firehose:us-west-2:1:deliverystream/sensor-lake";
    for event in [
        format!(r#"{{"x":{deep},"records":[]}}"#),
        format!(
            r#"{{"deliveryStreamArn":"{arn}","records":[{{"recordId":"a","data":"","x":{deep}}}]}}"#
        ),
        format!(r#"{{"records":[{deep}]}}"#),
        format!(r#"{{"records":{deep}}}"#),
        deep.clone(),
    ] {
        let answer = handler.handle_json(event.as_bytes()).await;
        assert!(
            answer
                .as_ref()
                .is_err_and(|e| e.to_string().contains("line 1")),
            "{answer:?}"
        );
    }
    // serde_json skips an unknown value without recursion and refuses deep nesting where it
    // reads: no crash either way.
    type Kinesis = aws_lambda_events::event::kinesis::KinesisEvent;
    let skipped = serde_json::from_str::<Kinesis>(&format!(r#"{{"Records":[],"x":{deep}}}"#));
    assert!(skipped.is_ok_and(|e| e.records.is_empty()));
    assert!(serde_json::from_str::<Kinesis>(&format!(r#"{{"Records":[{deep}]}}"#)).is_err());
}

/// An event of so many tiny records that even failing each one would answer more than 6 MB
/// is refused as such (the invocation fails and Firehose retries it), instead of sending a
/// response Lambda would refuse.
#[tokio::test]
async fn an_event_whose_smallest_answer_exceeds_6_mb_is_refused() {
    let handler = FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).unwrap();
    let mut event = String::from(r#"{"records":["#);
    let mut n = 0;
    while event.len() < 6_000_000 {
        if n > 0 {
            event.push(',');
        }
        event.push_str(&format!(r#"{{"recordId":"{n}","data":""}}"#));
        n += 1;
    }
    event.push_str("]}");
    match handler.handle_json(event.as_bytes()).await {
        Err(e @ kpipe_runtime::lambda::LambdaError::ResponseTooLarge { bytes }) => {
            assert!(bytes > MAX_RESPONSE_BYTES, "{bytes}");
            assert!(e.to_string().contains("gettingstarted-limits"), "{e}");
        }
        other => panic!("{:?}", other.map(|r| r.len())),
    }
    // A third of it is answered, within the limit.
    let small: String = event[..2_000_000]
        .rsplit_once(",{")
        .map(|(head, _)| format!("{head}]}}"))
        .unwrap();
    let answer = handler.handle_json(small.as_bytes()).await.unwrap();
    assert!(answer.len() <= MAX_RESPONSE_BYTES);
}

mod never_panics {
    //! Property: the Lambda event reader answers any bytes with a response or an
    //! `InvalidEvent`, never a panic. Inputs are the fixtures with random byte edits (deleted,
    //! repeated or replaced with JSON's structural bytes), and arbitrary bytes. Failing cases
    //! are kept in `lambda.proptest-regressions` beside this file.

    use super::Telemetry;
    use kpipe_runtime::lambda::FirehoseHandler;
    use proptest::prelude::*;

    const FIXTURES: [&str; 2] = [
        include_str!("fixtures/firehose-kinesis-source.json"),
        include_str!("fixtures/firehose-direct-put.json"),
    ];
    const BYTES: &[u8] = b"{}[]\":,\\ 0-1.e9truefalsenull\xff\xc3\xa9\x00\nAZaz+/=";

    #[derive(Clone, Debug)]
    enum Edit {
        Delete(usize, usize),
        Repeat(usize, usize),
        Replace(usize, usize),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        prop_oneof![
            (0..4000usize, 1..40usize).prop_map(|(a, n)| Edit::Delete(a, n)),
            (0..4000usize, 1..200usize).prop_map(|(a, n)| Edit::Repeat(a, n)),
            (0..4000usize, 0..BYTES.len()).prop_map(|(a, b)| Edit::Replace(a, b)),
        ]
    }

    fn edited(fixture: usize, edits: &[Edit]) -> Vec<u8> {
        let mut e = FIXTURES[fixture].as_bytes().to_vec();
        for edit in edits {
            let len = e.len().max(1);
            match *edit {
                Edit::Delete(at, n) => {
                    let at = at % len;
                    e.drain(at..(at + n).min(e.len()));
                }
                Edit::Repeat(at, n) => {
                    let at = at % len;
                    let piece = e[at..(at + n).min(e.len())].to_vec();
                    e.splice(at..at, piece);
                }
                Edit::Replace(at, b) if !e.is_empty() => e[at % len] = BYTES[b],
                Edit::Replace(_, b) => e.push(BYTES[b]),
            }
        }
        e
    }

    fn answers(event: &[u8]) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let handler =
            FirehoseHandler::new::<Telemetry, _, _>(Telemetry::enrich()).expect("the transform");
        if let Ok(text) = rt.block_on(handler.handle_json(event)) {
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| TestCaseError::fail(format!("the response is not JSON: {e}")))?;
            prop_assert!(v["records"].is_array(), "{text}");
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn edited_events_are_answered_or_refused(
            fixture in 0..FIXTURES.len(),
            edits in prop::collection::vec(edit(), 1..8),
        ) {
            answers(&edited(fixture, &edits))?;
        }

        #[test]
        fn arbitrary_bytes_are_answered_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            answers(&bytes)?;
        }
    }
}
