//! The quickstart is also its pipeline's command line (`Telemetry::main()`): provision it on a
//! moto_server, check the plan is then empty, tear it down.

use kpipe_runtime::aws::moto::MotoServer;
use kpipe_runtime::aws::sdk::{
    aws_config, aws_sdk_firehose, aws_sdk_kinesis, aws_sdk_lambda, aws_sdk_s3,
};
use std::path::PathBuf;
use std::process::{Command, Output};

/// The quickstart binary cargo built next to this test (`target/<profile>/examples/`).
fn quickstart() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join("quickstart")
}

/// The quickstart with test credentials (moto accepts any) and no instance metadata lookups.
fn command() -> Command {
    let mut c = Command::new(quickstart());
    c.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

fn run(args: &[&str]) -> Output {
    command()
        .args(args)
        .output()
        .expect("the quickstart example was built by cargo test")
}

/// The functions' code for `plan` and `apply`: the lambda binaries cargo built for these
/// tests (x86_64 debug builds; the quickstart declares arm64, whose target these machines
/// may not have, and moto does not run the code), zipped by kpipe.
fn code_args(enrich: &str) -> Vec<String> {
    vec![
        "--lambda-binary".into(),
        format!("enrich={enrich}"),
        "--lambda-binary".into(),
        format!("frost_alerts={}", env!("CARGO_BIN_EXE_frost_alerts_lambda")),
    ]
}

/// `<command> --endpoint-url <endpoint>` with the functions' code.
fn provision(command: &str, endpoint: &str) -> Output {
    provision_with(command, endpoint, env!("CARGO_BIN_EXE_quickstart_lambda"))
}

fn provision_with(command: &str, endpoint: &str, enrich: &str) -> Output {
    let mut args = vec![command.to_owned(), "--endpoint-url".into(), endpoint.into()];
    args.extend(code_args(enrich));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

fn apply(endpoint: &str) -> Output {
    provision("apply", endpoint)
}

/// Runs `f` with an SDK configuration for the moto at `endpoint`, on a runtime of its own.
fn with_moto<T>(endpoint: &str, f: impl AsyncFnOnce(aws_config::SdkConfig) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let config = kpipe_runtime::aws::moto::local_sdk_config(endpoint, "us-west-2").await;
        f(config).await
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// What moto holds about a function: (CodeSha256, LastModified, runtime, memory, timeout,
/// architecture, role).
fn function(
    endpoint: &str,
    name: &str,
) -> Option<(String, String, String, i32, i32, String, String)> {
    with_moto(endpoint, async |config| {
        let out = aws_sdk_lambda::Client::new(&config)
            .get_function()
            .function_name(name)
            .send()
            .await
            .ok()?;
        let c = out.configuration()?;
        Some((
            c.code_sha256()?.to_owned(),
            // moto has no RevisionId; LastModified changes with every update too.
            c.last_modified()?.to_owned(),
            c.runtime()?.as_str().to_owned(),
            c.memory_size()?,
            c.timeout()?,
            c.architectures().first()?.as_str().to_owned(),
            c.role()?.to_owned(),
        ))
    })
}

/// The quickstart from nothing to running and back, through its command line: `apply`
/// deploys both functions with their code, wires the transform and the consumer to them, a
/// second `apply` uploads nothing, a changed binary updates only the code, and `destroy`
/// removes everything kpipe tagged except the bucket.
#[test]
fn apply_deploys_the_functions_and_destroy_removes_them() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();

    let plan = provision("plan", &endpoint);
    assert!(plan.status.success(), "{}", text(&plan));
    for line in [
        "+ kinesis stream sensor-readings (2 shards, 24 h, KMS alias/aws/kinesis)",
        "+ lambda function telemetry-enrich (provided.al2023, 256 MiB, 60 s, arm64, code ",
        "+ lambda function telemetry-frost-alerts (provided.al2023, ",
        "+ lambda event source mapping sensor-readings -> telemetry-frost-alerts",
    ] {
        assert!(text(&plan).contains(line), "{line}\n{}", text(&plan));
    }

    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));
    for line in [
        "created lambda function telemetry-enrich",
        "created lambda function telemetry-frost-alerts",
        "created firehose delivery stream sensor-lake",
        "created lambda event source mapping sensor-readings -> telemetry-frost-alerts",
    ] {
        assert!(text(&applied).contains(line), "{line}\n{}", text(&applied));
    }
    let zip_sha = |binary: &str| {
        let zip =
            kpipe_runtime::artifacts::zip_bootstrap(&std::fs::read(binary).unwrap(), "t").unwrap();
        kpipe_runtime::artifacts::sha256_base64(&zip)
    };
    let enrich = function(&endpoint, "telemetry-enrich").expect("the transform's function");
    assert_eq!(enrich.0, zip_sha(env!("CARGO_BIN_EXE_quickstart_lambda")));
    assert_eq!(
        (enrich.2.as_str(), enrich.3, enrich.4, enrich.5.as_str()),
        ("provided.al2023", 256, 60, "arm64")
    );
    assert!(
        enrich.6.ends_with(":role/kpipe-telemetry-enrich-function"),
        "{}",
        enrich.6
    );
    let frost = function(&endpoint, "telemetry-frost-alerts").expect("the consumer's function");
    assert_eq!(frost.0, zip_sha(env!("CARGO_BIN_EXE_frost_alerts_lambda")));

    // The delivery stream's processor and the consumer's mapping point at the functions.
    let (processor_arn, version, mapping_function) = with_moto(&endpoint, async |config| {
        let d = aws_sdk_firehose::Client::new(&config)
            .describe_delivery_stream()
            .delivery_stream_name("sensor-lake")
            .send()
            .await
            .unwrap();
        let d = d.delivery_stream_description().unwrap().clone();
        let ext = d.destinations()[0]
            .extended_s3_destination_description()
            .unwrap()
            .clone();
        let arn = ext.processing_configuration().unwrap().processors()[0]
            .parameters()
            .iter()
            .find(|p| p.parameter_name().as_str() == "LambdaArn")
            .unwrap()
            .parameter_value()
            .to_owned();
        let mappings = aws_sdk_lambda::Client::new(&config)
            .list_event_source_mappings()
            .function_name("telemetry-frost-alerts")
            .send()
            .await
            .unwrap();
        let function = mappings.event_source_mappings()[0]
            .function_arn()
            .unwrap()
            .to_owned();
        (arn, d.version_id().to_owned(), function)
    });
    assert!(
        processor_arn.ends_with(":function:telemetry-enrich"),
        "{processor_arn}"
    );
    assert!(
        mapping_function.ends_with(":function:telemetry-frost-alerts"),
        "{mapping_function}"
    );

    // A second apply uploads nothing and changes nothing.
    let again = provision("plan", &endpoint);
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "No changes. AWS matches the declaration.",
        "{}",
        text(&again)
    );
    let second = apply(&endpoint);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        String::from_utf8_lossy(&second.stdout).trim(),
        "Nothing to do."
    );
    assert_eq!(
        function(&endpoint, "telemetry-enrich"),
        Some(enrich.clone())
    );
    assert_eq!(
        function(&endpoint, "telemetry-frost-alerts"),
        Some(frost.clone())
    );
    let version_after = with_moto(&endpoint, async |config| {
        aws_sdk_firehose::Client::new(&config)
            .describe_delivery_stream()
            .delivery_stream_name("sensor-lake")
            .send()
            .await
            .unwrap()
            .delivery_stream_description()
            .unwrap()
            .version_id()
            .to_owned()
    });
    assert_eq!(version_after, version);

    // Another binary for the transform: only its code is updated.
    let other = env!("CARGO_BIN_EXE_frost_alerts_lambda");
    let changed = provision_with("plan", &endpoint, other);
    assert_eq!(
        String::from_utf8_lossy(&changed.stdout)
            .lines()
            .next()
            .unwrap_or_default(),
        format!(
            "  ~ lambda function telemetry-enrich: code -> {} (arm64)",
            &zip_sha(other)[..12]
        ),
        "{}",
        text(&changed)
    );
    let updated = provision_with("apply", &endpoint, other);
    assert!(updated.status.success(), "{}", text(&updated));
    let now = function(&endpoint, "telemetry-enrich").unwrap();
    assert_eq!(now.0, zip_sha(other));
    assert_eq!(
        (now.3, now.4),
        (enrich.3, enrich.4),
        "the configuration is unchanged"
    );
    assert_eq!(function(&endpoint, "telemetry-frost-alerts"), Some(frost));

    // Destroy removes the functions and the mapping; only the bucket is kept.
    let destroy = run(&["destroy", "--endpoint-url", &endpoint]);
    assert!(destroy.status.success(), "{}", text(&destroy));
    for line in [
        "deleted lambda event source mapping sensor-readings -> telemetry-frost-alerts",
        "deleted lambda function telemetry-enrich",
        "deleted lambda function telemetry-frost-alerts",
        "deleted firehose delivery stream sensor-lake",
        "deleted kinesis stream sensor-readings",
        "deleted iam role kpipe-telemetry-sensor-lake",
        "kept s3 bucket acme-telemetry",
    ] {
        assert!(text(&destroy).contains(line), "{line}\n{}", text(&destroy));
    }
    assert_eq!(function(&endpoint, "telemetry-enrich"), None);
    // Nothing of the pipeline is left but the bucket: no function, stream, delivery stream,
    // mapping or role.
    let left = with_moto(&endpoint, async |config| {
        let functions = aws_sdk_lambda::Client::new(&config)
            .list_functions()
            .send()
            .await
            .unwrap()
            .functions()
            .len();
        let mappings = aws_sdk_lambda::Client::new(&config)
            .list_event_source_mappings()
            .send()
            .await
            .unwrap()
            .event_source_mappings()
            .len();
        let streams = aws_sdk_kinesis::Client::new(&config)
            .list_streams()
            .send()
            .await
            .unwrap()
            .stream_names()
            .len();
        let deliveries = aws_sdk_firehose::Client::new(&config)
            .list_delivery_streams()
            .send()
            .await
            .unwrap()
            .delivery_stream_names()
            .len();
        let roles = kpipe_runtime::aws::sdk::aws_sdk_iam::Client::new(&config)
            .list_roles()
            .send()
            .await
            .unwrap()
            .roles()
            .iter()
            .filter(|r| r.role_name().starts_with("kpipe-telemetry-"))
            .count();
        (functions, mappings, streams, deliveries, roles)
    });
    assert_eq!(left, (0, 0, 0, 0, 0));
}

/// `destroy` never deletes a same-named stream that kpipe did not create for the pipeline (it
/// may hold another team's data): it refuses with exit code 6, deletes nothing, and deletes
/// only with `--force`.
#[test]
fn destroy_refuses_resources_the_pipeline_does_not_own() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    with_moto(&endpoint, async |config| {
        aws_sdk_kinesis::Client::new(&config)
            .create_stream()
            .stream_name("sensor-readings")
            .shard_count(1)
            .send()
            .await
            .unwrap();
    });
    let refused = run(&["destroy", "--endpoint-url", &endpoint]);
    assert_eq!(refused.status.code(), Some(6), "{}", text(&refused));
    assert!(
        text(&refused).contains("refusing to destroy: kinesis stream sensor-readings exists but was not created by kpipe for pipeline Telemetry"),
        "{}",
        text(&refused)
    );
    let exists = |endpoint: &str| {
        with_moto(endpoint, async |config| {
            aws_sdk_kinesis::Client::new(&config)
                .describe_stream_summary()
                .stream_name("sensor-readings")
                .send()
                .await
                .is_ok()
        })
    };
    assert!(exists(&endpoint), "nothing was deleted");
    let forced = run(&["destroy", "--endpoint-url", &endpoint, "--force"]);
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(!exists(&endpoint));
}

#[test]
fn synth_and_bad_usage() {
    let synth = run(&["synth"]);
    assert!(synth.status.success());
    let template: serde_json::Value = serde_json::from_slice(&synth.stdout).unwrap();
    assert_eq!(
        template["Resources"]["SensorLakeDeliveryStream"]["Type"],
        "AWS::KinesisFirehose::DeliveryStream"
    );
    let bad = run(&["apply", "--no-such-flag"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
}

#[test]
fn estimate_for_a_load() {
    let out = run(&[
        "estimate",
        "--records-per-sec",
        "5000",
        "--record-size",
        "512",
        "--consumers",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["streams"][0]["shards_needed"], 5);
    assert_eq!(e["streams"][0]["shards_declared"], 2);
    let human = run(&[
        "estimate",
        "--records-per-sec",
        "5000",
        "--record-size",
        "512",
        "--consumers",
        "2",
    ]);
    assert!(
        text(&human).contains("fewer shards than the load needs"),
        "{}",
        text(&human)
    );
    // A load that is not one is a usage error, not a NaN or negative estimate.
    for bad in [
        "--records-per-sec=-5",
        "--records-per-sec=NaN",
        "--records-per-sec=inf",
    ] {
        let out = run(&["estimate", bad, "--record-size", "512"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", text(&out));
        assert!(text(&out).contains("is not a load"), "{}", text(&out));
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn help_lists_the_stages() {
    let help = run(&["--help"]);
    assert!(help.status.success());
    let help = text(&help);
    assert!(
        help.starts_with("Sensor telemetry into the raw data lake."),
        "{help}"
    );
    for stage in [
        "stream     readings      Kinesis `sensor-readings` of Reading (2 shards)",
        "transform  enrich        Reading -> Enriched by crate::telemetry::enrich",
        "delivery   sensor_lake   Firehose `sensor-lake`: readings -> enrich -> lake",
        "consumer   frost_alerts  readings -> crate::telemetry::frost_alert (Lambda `telemetry-frost-alerts`, LATEST)",
    ] {
        assert!(help.contains(stage), "{stage}\n{help}");
    }
}

/// `spec`, `synth` and `estimate` into a reader that is gone (`| head -1`, `| true`) end quietly
/// with 0, not with a panic and 101.
#[test]
fn output_into_a_closed_pipe_ends_quietly() {
    for args in [
        &["spec"][..],
        &["synth"],
        &[
            "estimate",
            "--records-per-sec",
            "100",
            "--record-size",
            "200",
            "--json",
        ],
    ] {
        let mut child = command()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // The reader goes away before the program writes (as `| true` would): its output
        // meets a closed pipe.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{args:?}: {}", text(&out));
    }
}

#[test]
fn run_generates_records_and_writes_a_json_report() {
    let dir = scratch("run-generate");
    let report = dir.join("report.json");
    let out = run(&[
        "run",
        "--generate",
        "2000",
        "--quiet",
        "--out",
        dir.join("data").to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["lines"], 2000);
    assert_eq!(json["input"]["put"], 2000);
    let d = &json["run"]["deliveries"][0];
    assert_eq!(d["received"], 2000);
    let sum = ["delivered", "dropped", "failed"]
        .iter()
        .map(|k| d[k].as_u64().unwrap())
        .sum::<u64>();
    assert_eq!(sum, 2000);
    // Test rigs are dropped and sub-zero-Kelvin readings fail: both occur in 2,000 samples.
    assert!(d["dropped"].as_u64().unwrap() > 0 && d["failed"].as_u64().unwrap() > 0);
    // Objects are on disk where the report says.
    let first = d["objects"][0].as_str().unwrap();
    assert!(first.starts_with("acme-telemetry/raw/site="), "{first}");
    assert!(dir.join("data").join(first).is_file());
}

#[test]
fn run_reads_ndjson_and_exit_codes_tell_what_went_in() {
    let dir = scratch("run-file");
    let good = r#"{"sensor_id":"s-1","site":"oslo","celsius":3.5,"at_ms":1}"#;
    let cold = r#"{"sensor_id":"s-2","site":"oslo","celsius":-400,"at_ms":2}"#;
    let input = dir.join("readings.ndjson");
    let data = dir.join("data");
    let data = data.to_str().unwrap();

    std::fs::write(&input, format!("{good}\n{cold}\n")).unwrap();
    let ok = run(&["run", input.to_str().unwrap(), "--quiet", "--out", data]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("input: 2 records, 2 put"),
        "{}",
        text(&ok)
    );
    // The failed reading is an error document, which --strict turns into exit code 4.
    let strict = run(&[
        "run",
        input.to_str().unwrap(),
        "--quiet",
        "--strict",
        "--out",
        data,
    ]);
    assert_eq!(strict.status.code(), Some(4), "{}", text(&strict));

    // A line over the stream's 1 MiB record limit is rejected, listed, and exits with 4.
    let huge = format!(
        r#"{{"sensor_id":"s-3","site":"{}","celsius":1,"at_ms":3}}"#,
        "x".repeat(1 << 20)
    );
    std::fs::write(&input, format!("{good}\nnot json\n{huge}\n")).unwrap();
    let partial = run(&["run", input.to_str().unwrap(), "--quiet", "--out", data]);
    assert_eq!(partial.status.code(), Some(4), "{}", text(&partial));
    let t = text(&partial);
    assert!(
        t.contains(
            "input: 3 records, 2 put, 1 not of the input's type (put as-is), 1 rejected (not put)"
        ),
        "{t}"
    );
    assert!(
        t.contains("line 2: not a `Reading`: expected ident at line 1 column 2 (put as-is)"),
        "{t}"
    );
    assert!(
        t.contains("line 3: the line is 1048628 bytes, more than the 1048578 bytes of the largest record this input takes"),
        "{t}"
    );

    // Usage errors exit with 2 and say what to do.
    let unknown = run(&["run", "--into", "nope", input.to_str().unwrap()]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(
        text(&unknown).contains("its inputs: `readings`"),
        "{}",
        text(&unknown)
    );
    let missing = run(&["run", dir.join("missing.ndjson").to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
}

/// Puts `n` sample readings (from number `first`) on the quickstart's stream in moto with the
/// typed producer.
fn produce(endpoint: &str, first: u64, n: u64) {
    produce_with_sequences(endpoint, first, n);
}

/// `run --source kinesis --drain` from the trim horizon, with objects under `dir/data`,
/// checkpoints in `dir/checkpoints.json` and the JSON report in `dir/report.json`.
fn drain_from_trim_horizon(endpoint: &str, dir: &std::path::Path, extra: &[&str]) -> Output {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let mut args = vec![
        "run".to_owned(),
        "--source".into(),
        "kinesis".into(),
        "--endpoint-url".into(),
        endpoint.into(),
        "--from".into(),
        "trim-horizon".into(),
        "--drain".into(),
        "--quiet".into(),
        "--out".into(),
        path("data"),
        "--checkpoints".into(),
        path("checkpoints.json"),
        "--report-json".into(),
        path("report.json"),
    ];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&args)
}

#[test]
fn run_drains_a_kinesis_stream_and_resumes_from_its_checkpoints() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));
    produce(&endpoint, 1, 3000);

    let dir = scratch("run-kinesis");
    let data = dir.join("data");
    let checkpoints = dir.join("checkpoints.json");
    let report = dir.join("report.json");
    let drain = || drain_from_trim_horizon(&endpoint, &dir, &[]);
    let first = drain();
    assert!(first.status.success(), "{}", text(&first));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["records"], 3000);
    let d = &json["run"]["deliveries"][0];
    assert_eq!(d["received"], 3000);
    let sum: u64 = ["delivered", "dropped", "failed"]
        .iter()
        .map(|k| d[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 3000, "every record read is accounted for");
    assert!(
        d["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| data.join(k.as_str().unwrap()).is_file())
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&checkpoints).unwrap()).unwrap();
    assert_eq!(
        saved.as_object().unwrap().len(),
        2,
        "one checkpoint per shard: {saved}"
    );

    // Nothing new: nothing read again.
    let again = drain();
    assert!(again.status.success(), "{}", text(&again));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["records"], 0);

    // A time that is not one is a usage error.
    let bad = run(&[
        "run",
        "--source",
        "kinesis",
        "--drain",
        "--endpoint-url",
        &endpoint,
        "--from",
        "yesterday",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad).contains("RFC 3339"), "{}", text(&bad));

    // New records: only they are read.
    produce(&endpoint, 3001, 250);
    let more = drain();
    assert!(more.status.success(), "{}", text(&more));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["records"], 250);
}

#[test]
fn a_drain_whose_objects_cannot_be_stored_saves_no_checkpoint_and_exits_5() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));
    produce(&endpoint, 1, 200);

    // The bucket's folder is a file: every object write fails (as a full disk or a store
    // that refuses the credentials would).
    let dir = scratch("run-kinesis-unwritable");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(data.join("acme-telemetry"), b"not a folder").unwrap();
    let checkpoints = dir.join("checkpoints.json");
    let report = dir.join("report.json");
    let drain = || drain_from_trim_horizon(&endpoint, &dir, &["--write-deadline", "1"]);
    let failed = drain();
    assert_eq!(failed.status.code(), Some(5), "{}", text(&failed));
    assert!(text(&failed).contains("UNDELIVERED"), "{}", text(&failed));
    assert!(
        text(&failed).contains("checkpoints not moved"),
        "{}",
        text(&failed)
    );
    assert!(
        !checkpoints.exists(),
        "no checkpoint passes an unstored record"
    );
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let d = &json["run"]["deliveries"][0];
    assert_eq!(d["received"], 200);
    assert_eq!(d["delivered"], 0);
    assert_eq!(d["failed"], 0, "no error document was stored either");
    assert_eq!(
        d["undelivered"].as_u64().unwrap() + d["dropped"].as_u64().unwrap(),
        200
    );

    // The store recovers: the next drain reads the same 200 again and delivers them.
    std::fs::remove_file(data.join("acme-telemetry")).unwrap();
    let again = drain();
    assert!(again.status.success(), "{}", text(&again));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["records"], 200);
    let d = &json["run"]["deliveries"][0];
    assert_eq!(d["undelivered"], 0);
    assert_eq!(
        ["delivered", "dropped", "failed"]
            .iter()
            .map(|k| d[k].as_u64().unwrap())
            .sum::<u64>(),
        200
    );
    assert!(checkpoints.exists());
}

#[test]
fn run_reads_kinesis_continuously_until_interrupted() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));
    let dir = scratch("run-kinesis-continuous");
    let checkpoints = dir.join("checkpoints.json");
    let progress = dir.join("checkpoints.json.progress");
    let report = dir.join("report.json");
    let mut child = command()
        .args([
            "run",
            "--source",
            "kinesis",
            "--endpoint-url",
            &endpoint,
            "--from",
            "trim-horizon",
            "--quiet",
            "--out",
            dir.join("data").to_str().unwrap(),
            "--checkpoints",
            checkpoints.to_str().unwrap(),
            "--report-json",
            report.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Records put while it runs are read: wait until its progress reaches the last record put
    // on each shard (a condition, bounded by 60 s).
    let last = produce_with_sequences(&endpoint, 1, 500);
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let seen: std::collections::BTreeMap<String, String> = std::fs::read(&progress)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        if seen == last {
            break;
        }
        if std::time::Instant::now() > give_up || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("never read: {seen:?} vs {last:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    // Ctrl-C: what was read is delivered, then checkpointed.
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopping: delivering what was read"));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["records"], 500);
    assert_eq!(json["run"]["deliveries"][0]["received"], 500);
    let saved: std::collections::BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(&checkpoints).unwrap()).unwrap();
    assert_eq!(saved, last);
}

/// As [`produce`], returning per shard the sequence number of the last record put.
fn produce_with_sequences(
    endpoint: &str,
    first: u64,
    n: u64,
) -> std::collections::BTreeMap<String, String> {
    with_moto(endpoint, async |config| {
        let producer = kpipe_runtime::kinesis::KinesisProducer::new(
            &config,
            kpipe_examples::telemetry::Telemetry::readings(),
        );
        let readings: Vec<_> = (first..first + n)
            .map(kpipe_examples::telemetry::sample_reading)
            .collect();
        let mut last = std::collections::BTreeMap::<String, String>::new();
        for o in producer.put_batch(&readings).await.unwrap() {
            let kpipe_runtime::kinesis::RecordOutcome::Put {
                shard_id,
                sequence_number,
            } = o
            else {
                panic!("{o:?}")
            };
            let entry = last.entry(shard_id).or_default();
            if (sequence_number.len(), &sequence_number) > (entry.len(), &*entry) {
                *entry = sequence_number;
            }
        }
        last
    })
}

#[test]
fn a_drain_killed_midway_loses_nothing_and_counts_what_it_reads_again() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));
    produce(&endpoint, 1, 3000);

    let dir = scratch("run-kinesis-killed");
    let data = dir.join("data");
    let checkpoints = dir.join("checkpoints.json");
    let progress = dir.join("checkpoints.json.progress");
    let report = dir.join("report.json");
    let args = |page_size: &'static str| -> Vec<String> {
        [
            "run",
            "--source",
            "kinesis",
            "--endpoint-url",
            &endpoint,
            "--from",
            "trim-horizon",
            "--drain",
            "--quiet",
            "--page-size",
            page_size,
            "--out",
            data.to_str().unwrap(),
            "--checkpoints",
            checkpoints.to_str().unwrap(),
            "--report-json",
            report.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    };

    // Pages of 100 records at 5 calls per second per shard: 3,000 records take seconds. Kill
    // the run once it has read some (its progress file says how far), before it delivered.
    let mut child = command()
        .args(args("100"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let read_so_far = loop {
        let seen = std::fs::read(&progress)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map_or(0, |v| v.as_object().map_or(0, |o| o.len()));
        if seen > 0 {
            break seen;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the drain never started"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the drain ended before it was killed"
        );
        std::thread::yield_now();
    };
    assert!(read_so_far > 0);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!checkpoints.exists(), "a killed run saves no checkpoint");

    // The restart reads everything again from the last checkpoint (none): nothing is lost,
    // and the records the killed run had read are counted as read again.
    let again = command().args(args("10000")).output().unwrap();
    assert!(again.status.success(), "{}", text(&again));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["records"], 3000);
    let reread = json["input"]["reread"].as_u64().unwrap();
    assert!((100..3000).contains(&reread), "{reread} read again");
    let d = &json["run"]["deliveries"][0];
    let sum: u64 = ["delivered", "dropped", "failed"]
        .iter()
        .map(|k| d[k].as_u64().unwrap())
        .sum();
    assert_eq!(sum, 3000);
    assert!(
        checkpoints.exists() && !progress.exists(),
        "checkpoints saved, progress cleared"
    );
}

/// The whole path on loopback: typed producer -> Kinesis (moto) -> the engine with the
/// transform -> S3 (moto, through object_store), checked by listing and reading the bucket
/// with aws-sdk-s3.
#[test]
fn kinesis_to_transform_to_s3_end_to_end() {
    use kpipe_examples::telemetry::{Enriched, Reading, Telemetry, sample_reading};
    use kpipe_runtime::kinesis::{KinesisProducer, RecordOutcome};
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let config = runtime.block_on(kpipe_runtime::aws::moto::local_sdk_config(
        &endpoint,
        "us-west-2",
    ));
    // 10,000 readings (3% from test rigs, 2% implausible) and three over the 1 MiB record
    // limit, which the producer rejects at put time with the reason.
    let mut readings: Vec<Reading> = (1..=10_000).map(sample_reading).collect();
    for i in 0..3 {
        let mut big = sample_reading(20_000 + i);
        big.site = "x".repeat(1 << 20);
        readings.insert(1000 * (i as usize + 1), big);
    }
    let outcomes = runtime
        .block_on(KinesisProducer::new(&config, Telemetry::readings()).put_batch(&readings))
        .unwrap();
    let rejected: Vec<&RecordOutcome> = outcomes
        .iter()
        .filter(|o| matches!(o, RecordOutcome::Rejected(_)))
        .collect();
    assert_eq!(rejected.len(), 3);
    assert!(
        matches!(rejected[0], RecordOutcome::Rejected(why) if why.contains("the stream takes at most 1048576"))
    );

    let dir = scratch("kinesis-to-s3");
    let report = dir.join("report.json");
    let out = run(&[
        "run",
        "--source",
        "kinesis",
        "--endpoint-url",
        &endpoint,
        "--from",
        "trim-horizon",
        "--drain",
        "--to",
        "s3",
        "--quiet",
        "--checkpoints",
        dir.join("checkpoints.json").to_str().unwrap(),
        "--report-json",
        report.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(json["input"]["records"], 10_000);
    let d = &json["run"]["deliveries"][0];
    let (delivered, dropped, failed) = (
        d["delivered"].as_u64().unwrap(),
        d["dropped"].as_u64().unwrap(),
        d["failed"].as_u64().unwrap(),
    );
    assert_eq!(delivered + dropped + failed, 10_000);

    // What the transform should have done with each reading.
    let expected_ok: std::collections::BTreeSet<u64> = (1..=10_000)
        .map(sample_reading)
        .filter(|r| !r.sensor_id.starts_with("test-") && r.celsius >= -273.15)
        .map(|r| r.at_ms)
        .collect();
    assert_eq!(expected_ok.len() as u64, delivered);

    // Read the bucket back through aws-sdk-s3.
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let keys: Vec<String> = runtime.block_on(async {
        let mut keys = Vec::new();
        let mut pages = s3
            .list_objects_v2()
            .bucket("acme-telemetry")
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                keys.push(o.key().unwrap().to_owned());
            }
        }
        keys
    });
    let mut seen = std::collections::BTreeMap::<u64, usize>::new();
    let mut error_documents = 0;
    for key in &keys {
        let body = runtime.block_on(async {
            s3.get_object()
                .bucket("acme-telemetry")
                .key(key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap()
                .into_bytes()
        });
        let text = String::from_utf8(
            kpipe_runtime::engine::decompress(&body, kpipe_runtime::spec::Compression::Gzip)
                .unwrap_or_else(|_| body.to_vec()),
        )
        .unwrap();
        if key.starts_with("errors/processing-failed/") {
            for line in text.lines() {
                let doc: serde_json::Value = serde_json::from_str(line).unwrap();
                assert!(
                    doc["errorMessage"]
                        .as_str()
                        .unwrap()
                        .contains("implausible temperature")
                );
                error_documents += 1;
            }
            continue;
        }
        // raw/site=<site>/yyyy/MM/dd/HH/sensor-lake-1-...gz, one partition per site.
        let site = key
            .strip_prefix("raw/site=")
            .and_then(|k| k.split('/').next())
            .unwrap_or_else(|| panic!("unexpected key {key}"));
        assert!(key.ends_with(".gz"), "{key}");
        for line in text.lines() {
            let e: Enriched = serde_json::from_str(line).unwrap();
            assert_eq!(e.site, site, "{key}");
            *seen.entry(e.at_ms).or_default() += 1;
        }
    }
    assert_eq!(
        error_documents, failed,
        "every failed reading has its error document"
    );
    assert!(seen.values().all(|n| *n == 1), "no reading twice");
    assert_eq!(
        seen.keys()
            .copied()
            .collect::<std::collections::BTreeSet<_>>(),
        expected_ok,
        "every valid reading exactly once"
    );
}

#[test]
fn tail_prints_typed_records_and_flags_the_others() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));
    produce(&endpoint, 1, 20);
    // A producer that is not kpipe puts bytes that are not a Reading.
    with_moto(&endpoint, async |config| {
        aws_sdk_kinesis::Client::new(&config)
            .put_record()
            .stream_name("sensor-readings")
            .partition_key("legacy")
            .data(aws_sdk_kinesis::primitives::Blob::new(
                b"temp=21.5".to_vec(),
            ))
            .send()
            .await
            .unwrap();
    });

    let all = run(&["tail", "--endpoint-url", &endpoint]);
    let stdout = String::from_utf8_lossy(&all.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 21, "{}", text(&all));
    let typed = lines
        .iter()
        .filter(|l| {
            let json = l.splitn(3, ' ').nth(2).unwrap();
            serde_json::from_str::<kpipe_examples::telemetry::Reading>(json).is_ok()
        })
        .count();
    assert_eq!(typed, 20);
    assert!(lines.iter().all(|l| l.starts_with("shardId-")));
    assert!(
        stdout.contains("<not a `Reading`: expected ident at line 1 column 2> temp=21.5"),
        "{stdout}"
    );
    assert_eq!(
        all.status.code(),
        Some(1),
        "a record that is not typed is a failure"
    );
    assert!(text(&all).contains("21 records from sensor-readings, 1 of them not a `Reading`"));

    let five = run(&["tail", "-n", "5", "--endpoint-url", &endpoint]);
    assert_eq!(String::from_utf8_lossy(&five.stdout).lines().count(), 5);
    assert!(five.status.success());
}

/// Every `at_ms` in the delivered objects and error documents under `data` (a reading's
/// `at_ms` is unique to its number); panics on a staging file left visible.
fn stored_readings(data: &std::path::Path) -> std::collections::BTreeSet<u64> {
    use kpipe_runtime::spec::Compression;
    let mut found = std::collections::BTreeSet::new();
    for entry in walk(data) {
        let name = entry.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(
            !name
                .rsplit_once('#')
                .is_some_and(|(_, n)| n.bytes().all(|b| b.is_ascii_digit())),
            "a staging file is visible: {}",
            entry.display()
        );
        let bytes = std::fs::read(&entry).unwrap();
        let text = if name.ends_with(".gz") {
            kpipe_runtime::engine::decompress(&bytes, Compression::Gzip).unwrap()
        } else {
            bytes
        };
        for line in String::from_utf8(text).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let record = match v.get("rawData").and_then(|d| d.as_str()) {
                // An error document: the reading is its raw data.
                Some(raw) => {
                    use base64::Engine;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(raw)
                        .unwrap();
                    serde_json::from_slice(&bytes).unwrap()
                }
                None => v,
            };
            found.insert(record["at_ms"].as_u64().unwrap());
        }
    }
    found
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// A continuous `run --source kinesis` killed with SIGKILL at 20 points while readings keep
/// arriving, restarted each time, then drained: every reading put is stored at least once
/// (delivered, or in an error document when the transform fails it; the transform drops the
/// `test-` sensors), no staging file is visible, and the final report counts what was read again.
#[test]
fn a_continuous_run_killed_twenty_times_loses_nothing() {
    use kpipe_examples::telemetry::sample_reading;
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = moto.endpoint().to_owned();
    let applied = apply(&endpoint);
    assert!(applied.status.success(), "{}", text(&applied));
    let dir = scratch("run-kinesis-kill-restart");
    let data = dir.join("data");
    let checkpoints = dir.join("checkpoints.json");
    let report = dir.join("report.json");
    let args = |drain: bool| -> Vec<String> {
        let mut a: Vec<String> = [
            "run",
            "--source",
            "kinesis",
            "--endpoint-url",
            &endpoint,
            "--from",
            "trim-horizon",
            "--quiet",
            "--checkpoint-every",
            "0.5",
            "--page-size",
            "50",
            "--out",
            data.to_str().unwrap(),
            "--checkpoints",
            checkpoints.to_str().unwrap(),
            "--report-json",
            report.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec();
        if drain {
            a.push("--drain".into());
        }
        a
    };
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let mut put = 0;
    // Kill points spread from "still starting" to "several checkpoints in" (splitmix64).
    let mut z = 7u64;
    for round in 0..20 {
        produce(&endpoint, put + 1, 150);
        put += 150;
        let mut child = command()
            .args(args(false))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let wait_ms = 50 + (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9) % 1500;
        let kill_at = std::time::Instant::now() + std::time::Duration::from_millis(wait_ms);
        while std::time::Instant::now() < kill_at {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "round {round}: the run ended by itself ({status}): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            std::time::Instant::now() < give_up,
            "round {round}: out of time"
        );
    }
    let last = command().args(args(true)).output().unwrap();
    assert!(last.status.success(), "{}", text(&last));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(json["input"]["reread"].is_u64(), "{json}");
    let stored = stored_readings(&data);
    let missing: Vec<u64> = (1..=put)
        .map(sample_reading)
        .filter(|r| !r.sensor_id.starts_with("test-"))
        .map(|r| r.at_ms)
        .filter(|at| !stored.contains(at))
        .collect();
    assert!(
        missing.is_empty(),
        "{} readings lost: {missing:?}",
        missing.len()
    );
}

/// `synth --assets DIR`: each function's zip under `DIR/kpipe/telemetry/`, named by its hash,
/// the template's code parameters defaulting to them in the asset bucket (so it deploys as it
/// is once `aws s3 sync` uploaded them), a manifest, and a template cfn-lint finds clean.
#[test]
fn synth_assets_writes_the_zips_and_a_template_that_points_at_them() {
    let dir = scratch("synth-assets");
    let mut args = vec![
        "synth".to_owned(),
        "--assets".into(),
        dir.to_str().unwrap().into(),
        "--asset-bucket".into(),
        "acme-artifacts".into(),
    ];
    args.extend(code_args(env!("CARGO_BIN_EXE_quickstart_lambda")));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("aws s3 sync"), "{}", text(&out));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("assets.json")).unwrap()).unwrap();
    let template: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("template.json")).unwrap()).unwrap();
    let assets = manifest["assets"].as_array().unwrap();
    assert_eq!(assets.len(), 2);
    for (asset, code) in assets.iter().zip(["EnrichCode", "FrostAlertsCode"]) {
        let key = asset["key"].as_str().unwrap();
        assert!(key.starts_with("kpipe/telemetry/"), "{key}");
        let zip = std::fs::read(dir.join(key)).unwrap();
        assert_eq!(
            kpipe_runtime::artifacts::sha256_base64(&zip),
            asset["code_sha256"].as_str().unwrap()
        );
        let params = &template["Parameters"];
        assert_eq!(
            params[format!("{code}S3Bucket")]["Default"],
            "acme-artifacts"
        );
        assert_eq!(params[format!("{code}S3Key")]["Default"], key);
    }
    let lint = Command::new("cfn-lint")
        .args(["-r", "us-west-2", "--"])
        .arg(dir.join("template.json"))
        .output()
        .expect("cfn-lint runs (scripts/test installs it)");
    assert!(lint.status.success(), "{}", text(&lint));
}
