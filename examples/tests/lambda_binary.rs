//! The `quickstart_lambda` binary end to end, under a minimal Lambda runtime API served by this
//! test on a loopback port: the binary polls for invocations, gets Firehose events, and posts
//! its responses (or, for a bad event, an error), exactly as it does in AWS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The runtime API's side: every request the binary makes, on whichever connection it comes
/// (the runtime's HTTP client may open a new one at any time), with a handle to answer it.
struct Api {
    requests: std::sync::mpsc::Receiver<Request>,
}

impl Api {
    fn serve(listener: TcpListener) -> Api {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let writer = stream.try_clone().unwrap();
                    let mut reader = BufReader::new(stream);
                    while let Some((line, headers, body)) = read_request(&mut reader) {
                        let request = (line, body, writer.try_clone().unwrap(), headers);
                        if tx.send(request).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Api { requests: rx }
    }

    /// The next request, within 60 s; `None` at once if the binary has exited.
    fn next(&self, child: &mut std::process::Child) -> Option<Request> {
        let give_up = std::time::Instant::now() + Duration::from_secs(60);
        while std::time::Instant::now() < give_up {
            match self.requests.recv_timeout(Duration::from_millis(100)) {
                Ok(request) => return Some(request),
                Err(_) if child.try_wait().ok().flatten().is_some() => return None,
                Err(_) => {}
            }
        }
        None
    }
}

/// A request the binary made: its request line, body, the connection to answer on, and its
/// headers (`name: value`, names in lower case).
type Request = (String, Vec<u8>, std::net::TcpStream, Vec<String>);

/// Reads one HTTP request: (request line, headers, body).
fn read_request(
    reader: &mut BufReader<std::net::TcpStream>,
) -> Option<(String, Vec<String>, Vec<u8>)> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut length = 0;
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let h = header.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().ok()?;
            }
            headers.push(format!("{}: {}", name.to_ascii_lowercase(), value.trim()));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((line.trim_end().to_owned(), headers, body))
}

#[test]
fn the_binary_answers_firehose_invocations_one_after_another() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = listener.local_addr().unwrap().to_string();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart_lambda"))
        .env("AWS_LAMBDA_RUNTIME_API", &api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "telemetry-enrich")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "4000")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_REGION", "us-west-2")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // A Kinesis-sourced event ("Transform source data in Amazon Data Firehose",
    // https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html) with three of
    // the quickstart's readings.
    use base64::Engine as _;
    use kpipe_examples::telemetry::Reading;
    let reading = |id: &str, site: &str, celsius: f64| {
        let r = Reading {
            sensor_id: id.into(),
            site: site.into(),
            celsius,
            at_ms: 1_664_028_793_294,
        };
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&r).unwrap())
    };
    let records: Vec<serde_json::Value> = [("s-1", "berlin", 100.0), ("test-9", "lab", 20.0), ("s-2", "oslo", -300.0)]
        .iter()
        .enumerate()
        .map(|(i, (id, site, c))| {
            serde_json::json!({
                "recordId": format!("4954698668313554428650745793632162567570019247115678515{}", 4 + i),
                "approximateArrivalTimestamp": 1_664_028_793_294i64,
                "data": reading(id, site, *c),
                "kinesisRecordMetadata": {
                    "sequenceNumber": format!("4954698668313554428650745793632162567570019247115678515{}", 4 + i),
                    "subsequenceNumber": 0, "partitionKey": id, "shardId": "shardId-000000000000",
                    "approximateArrivalTimestamp": 1_664_028_793_294i64
                }
            })
        })
        .collect();
    let event = serde_json::json!({
        "invocationId": "invocationIdExample",
        "deliveryStreamArn": "arn:aws:firehose:us-west-2:123456789012:deliverystream/sensor-lake",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-west-2:123456789012:stream/sensor-readings",
        "region": "us-west-2",
        "records": records
    })
    .to_string();
    let deadline = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 60_000;
    let api = Api::serve(listener);

    let (next, _, mut writer, _) = api
        .next(&mut child)
        .expect("the binary asks for an invocation");
    assert!(
        next.starts_with("GET /2018-06-01/runtime/invocation/next"),
        "{next}"
    );
    write!(
        writer,
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: req-1\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-west-2:123456789012:function:telemetry-enrich\r\ncontent-length: {}\r\n\r\n{event}",
        event.len()
    )
    .unwrap();

    let (post, body, mut writer, _) = api.next(&mut child).expect("the binary posts a response");
    write!(writer, "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").unwrap();
    // The next invocations on the same connection: a 1.5 MB event (read on two threads, as
    // the function's 4,000 MB buy them), then one that is not JSON. Both come with an
    // invocation id, which the answer must echo (AWS Lambda, Using the Lambda runtime API for
    // custom runtimes: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html).
    let mut invoke = |request_id: &str, event: &str| {
        let (next, _, mut writer, _) = api
            .next(&mut child)
            .expect("the binary asks for an invocation");
        assert!(
            next.starts_with("GET /2018-06-01/runtime/invocation/next"),
            "{next}"
        );
        write!(
            writer,
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {request_id}\r\nlambda-runtime-invocation-id: inv-{request_id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:us-west-2:123456789012:function:telemetry-enrich\r\ncontent-length: {}\r\n\r\n{event}",
            event.len()
        )
        .unwrap();
        let (line, body, mut writer, headers) = api.next(&mut child).expect("the binary answers");
        write!(writer, "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n").unwrap();
        let echoed = format!("lambda-runtime-invocation-id: inv-{request_id}");
        assert!(headers.contains(&echoed), "{echoed} in {headers:?}");
        (line, body)
    };
    let big_records: Vec<serde_json::Value> = (0..6_000)
        .map(|i| {
            serde_json::json!({
                "recordId": format!("r-{i}"),
                "approximateArrivalTimestamp": 1_664_028_793_294i64,
                "data": reading(&format!("s-{i}"), ["berlin", "oslo"][i % 2], (i % 40) as f64),
            })
        })
        .collect();
    let big = serde_json::json!({
        "deliveryStreamArn": "arn:aws:firehose:us-west-2:123456789012:deliverystream/sensor-lake",
        "records": big_records,
    })
    .to_string();
    assert!(big.len() > 1_000_000, "{}", big.len());
    let (big_post, big_body) = invoke("req-2", &big);
    let (bad_post, bad_body) = invoke("req-3", "{\"records\": [");
    let _ = child.kill();
    let _ = child.wait();

    assert_eq!(
        big_post,
        "POST /2018-06-01/runtime/invocation/req-2/response HTTP/1.1"
    );
    let big_response: serde_json::Value = serde_json::from_slice(&big_body).unwrap();
    let answers = big_response["records"].as_array().unwrap();
    assert_eq!(answers.len(), 6_000);
    for (i, a) in answers.iter().enumerate() {
        assert_eq!(a["recordId"], format!("r-{i}"), "in event order");
        assert_eq!(a["result"], "Ok");
        assert_eq!(
            a["metadata"]["partitionKeys"]["site"],
            ["berlin", "oslo"][i % 2]
        );
    }
    assert_eq!(
        bad_post,
        "POST /2018-06-01/runtime/invocation/req-3/error HTTP/1.1",
        "a bad event fails the invocation: {}",
        String::from_utf8_lossy(&bad_body)
    );
    assert!(
        String::from_utf8_lossy(&bad_body).contains("not a Firehose transformation event"),
        "{}",
        String::from_utf8_lossy(&bad_body)
    );

    assert_eq!(
        post,
        "POST /2018-06-01/runtime/invocation/req-1/response HTTP/1.1"
    );
    let response: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let results: Vec<&str> = response["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["Ok", "Dropped", "ProcessingFailed"]);
    assert_eq!(
        response["records"][0]["recordId"],
        "49546986683135544286507457936321625675700192471156785154"
    );
    assert_eq!(
        response["records"][0]["metadata"]["partitionKeys"]["site"],
        "berlin"
    );
}
