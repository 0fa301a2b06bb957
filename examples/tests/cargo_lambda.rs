//! `quickstart_lambda` served by `cargo lambda watch` and invoked with `cargo lambda invoke`
//! on 127.0.0.1 (cargo-lambda from PyPI, installed by scripts/test), as a developer tries the
//! transform before deploying it.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Watch(Child);

/// The pids of `pid`'s descendants, from /proc (children before grandchildren).
fn descendants(pid: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid ...": the command may hold spaces, so split after ')'.
        if let Some(ppid) = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
        {
            parents.push((child, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (c, _) in parents.iter().filter(|(_, pp)| *pp == p) {
            out.push(*c);
            frontier.push(*c);
        }
    }
    out
}

impl Drop for Watch {
    fn drop(&mut self) {
        // cargo lambda watch runs the function through cargo: stop exactly its descendants,
        // then it, and nothing else.
        for pid in descendants(self.0.id()).into_iter().rev() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(pid.to_string())
                .status();
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn cargo_lambda_watch_and_invoke() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
        .to_string();
    let dir = env!("CARGO_MANIFEST_DIR");
    let event =
        std::env::temp_dir().join(format!("kpipe-cargo-lambda-{}.json", std::process::id()));
    std::fs::write(
        &event,
        include_str!("fixtures/quickstart-firehose-event.json"),
    )
    .unwrap();
    // Fail at once, with the reason, when cargo-lambda is missing (cargo would start and
    // exit with "no such command", and the loop below would wait for nothing).
    let version = Command::new("cargo").args(["lambda", "--version"]).output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "cargo lambda is not installed (scripts/test installs it: pip install cargo-lambda): {version:?}"
    );
    let mut watch = Watch(
        Command::new("cargo")
            .args([
                "lambda",
                "watch",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port,
                "--ignore-changes",
                "--bin",
                "quickstart_lambda",
            ])
            .current_dir(dir)
            // `cargo test` holds the build directory's lock while tests run, so the function is
            // built in a target directory of its own.
            .env(
                "CARGO_TARGET_DIR",
                std::path::Path::new(dir).join("../target/cargo-lambda"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cargo lambda runs (scripts/test installs it: pip install cargo-lambda)"),
    );
    // Wait on the condition (an invocation answers), bounded by 20 minutes of real time: the
    // first invocation waits for cargo lambda watch to build the function (with the AWS SDK,
    // minutes on two cores).
    let give_up = Instant::now() + Duration::from_secs(1200);
    let output = loop {
        let out = Command::new("cargo")
            .args([
                "lambda",
                "invoke",
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &port,
                "--data-file",
            ])
            .arg(&event)
            .arg("quickstart_lambda")
            .current_dir(dir)
            .output()
            .unwrap();
        if out.status.success() {
            break out;
        }
        if let Some(status) = watch.0.try_wait().unwrap() {
            panic!("cargo lambda watch exited ({status}) before answering");
        }
        assert!(
            Instant::now() < give_up,
            "no answer: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let response: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let results: Vec<&str> = response["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["Ok", "Dropped", "ProcessingFailed"]);
    assert_eq!(
        response["records"][0]["metadata"]["partitionKeys"]["site"],
        "berlin"
    );
    let _ = std::fs::remove_file(event);
}
