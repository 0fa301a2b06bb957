//! The quickstart: the sensor-telemetry pipeline of the README, on the local engine.
//!
//! `cargo run --release --example quickstart` generates 100,000 readings (some from test rigs,
//! which the transform drops; some implausible, which it fails; a few that are not even JSON),
//! puts them on the `sensor-readings` stream, and lets the engine do what Firehose would: batch
//! them into the transform, partition the results by site, buffer, gzip and write them under
//! `./kpipe-data/acme-telemetry/`, with error documents for the failures. Then it prints the run
//! report and where the objects went. No AWS account is involved.
//!
//! With a subcommand it is the pipeline's command line instead (`Telemetry::main()`):
//! `cargo run --example quickstart -- synth` prints the CloudFormation template,
//! `cargo run --example quickstart -- plan --endpoint-url http://127.0.0.1:5000` compares the
//! declaration with AWS (or moto), `apply` and `destroy` provision and tear down.

use kpipe_examples::telemetry::{Reading, Telemetry};
use std::collections::BTreeMap;

const READINGS: u64 = 100_000;
const SITES: [&str; 6] = ["berlin", "oslo", "lisbon", "austin", "osaka", "nairobi"];

/// A small deterministic generator, so every run puts the same readings.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

fn reading(i: u64, rng: &mut Lcg, start_ms: i64) -> Reading {
    let roll = rng.next() % 1000;
    let sensor = rng.next() % 400;
    let sensor_id = if roll < 30 {
        format!("test-{sensor}")
    } else {
        format!("s-{sensor:03}")
    };
    let celsius = if (30..50).contains(&roll) {
        -300.0
    } else {
        (rng.next() % 600) as f64 / 10.0 - 10.0
    };
    Reading {
        sensor_id,
        site: SITES[(sensor % SITES.len() as u64) as usize].to_owned(),
        celsius,
        at_ms: start_ms as u64 + i,
    }
}

fn main() -> std::process::ExitCode {
    if std::env::args().len() > 1 {
        return Telemetry::main();
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime starts");
    match runtime.block_on(run_locally()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run_locally() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new("kpipe-data");
    let engine = Telemetry::local().root(root).progress(true).start()?;
    let readings = engine.producer(Telemetry::readings())?;
    let start_ms = engine.clock().now_ms();
    let mut rng = Lcg(42);
    let mut batch = Vec::with_capacity(500);
    let mut corrupt = 0;
    for i in 0..READINGS {
        // One reading in 200 arrives as bytes that are not JSON at all.
        if i % 200 == 199 {
            readings
                .put_bytes(
                    &format!("s-{i}"),
                    format!("{{broken reading {i}").into_bytes(),
                )
                .await??;
            corrupt += 1;
            continue;
        }
        batch.push(reading(i, &mut rng, start_ms));
        if batch.len() == 500 {
            let out = readings.put_batch(&batch).await?;
            assert_eq!(
                out.failed_record_count, 0,
                "no shard limits are enforced in the quickstart"
            );
            batch.clear();
        }
    }
    if !batch.is_empty() {
        readings.put_batch(&batch).await?;
    }
    let report = engine.shutdown().await?;

    println!("{report}\n");
    let d = &report.deliveries[0];
    println!(
        "{} readings in ({corrupt} of them not JSON): {} delivered, {} dropped (test rigs), {} failed (see error documents)",
        d.received, d.delivered, d.dropped, d.failed
    );
    let mut by_prefix: BTreeMap<String, usize> = BTreeMap::new();
    for key in d.objects.iter().chain(&d.error_objects) {
        let folder = key.rsplit_once('/').map_or(key.as_str(), |(p, _)| p);
        *by_prefix.entry(folder.to_owned()).or_default() += 1;
    }
    println!("\nobjects written under {}/:", root.display());
    for (folder, n) in &by_prefix {
        println!(
            "  {folder}/  ({n} object{})",
            if *n == 1 { "" } else { "s" }
        );
    }
    if let Some(first) = d.error_objects.first() {
        println!("\nan error document: {}", root.join(first).display());
    }
    if !report.is_conserved() {
        return Err("a record is unaccounted for".into());
    }
    Ok(())
}
