//! The quickstart is also its pipeline's command line (`Telemetry::main()`): provision it on a
//! moto_server, check the plan is then empty, tear it down.

use kpipe_runtime::aws::moto::MotoServer;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The quickstart binary cargo built next to this test (`target/<profile>/examples/`).
fn quickstart() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    profile_dir.join("examples").join("quickstart")
}

fn run(args: &[&str]) -> Output {
    Command::new(quickstart())
        .args(args)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .expect("the quickstart example was built by cargo test")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn plan_apply_plan_destroy_through_the_command_line() {
    let moto = MotoServer::start().expect("moto_server runs (scripts/test installs it)");
    let endpoint = ["--endpoint-url", moto.endpoint()];

    let plan = run(&[&["plan"][..], &endpoint].concat());
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(
        text(&plan).contains("+ kinesis stream sensor-readings (2 shards, 24 h)"),
        "{}",
        text(&plan)
    );

    let apply = run(&[&["apply"][..], &endpoint].concat());
    assert!(apply.status.success(), "{}", text(&apply));
    assert!(
        text(&apply).contains("created firehose delivery stream sensor-lake"),
        "{}",
        text(&apply)
    );

    let again = run(&[&["plan"][..], &endpoint].concat());
    assert_eq!(
        String::from_utf8_lossy(&again.stdout).trim(),
        "No changes. AWS matches the declaration."
    );

    let destroy = run(&[&["destroy"][..], &endpoint].concat());
    assert!(destroy.status.success(), "{}", text(&destroy));
    assert!(
        text(&destroy).contains("deleted kinesis stream sensor-readings"),
        "{}",
        text(&destroy)
    );
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
}
