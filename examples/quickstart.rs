//! The quickstart: the sensor-telemetry pipeline of the README, on the local engine.
//!
//! `cargo run --release --example quickstart` generates 100,000 readings (some from test rigs,
//! which the transform drops; some implausible, which it fails; a few that are not even JSON),
//! puts them on the `sensor-readings` stream, and lets the engine do what Firehose would: batch
//! them into the transform, partition the results by site, buffer, gzip and write them under
//! `./kpipe-data/acme-telemetry/`, with error documents for the failures. Beside Firehose, the
//! `frost_alerts` consumer reads the same stream as its Lambda function would (in batches per
//! shard, retrying and bisecting on failure). Then it prints the run report and where the
//! objects went. No AWS account is involved.
//!
//! With a subcommand it is the pipeline's command line instead (`Telemetry::main()` plus the
//! sample readings as a generator): `cargo run --example quickstart -- run readings.ndjson`
//! runs NDJSON readings through the same engine (`run --generate 5000` makes them up),
//! `cargo run --example quickstart -- synth` prints the CloudFormation template,
//! `cargo run --example quickstart -- plan --endpoint-url <http://127.0.0.1:5000>` compares the
//! declaration with AWS (or moto), `apply` and `destroy` provision and tear down.

use kpipe_examples::telemetry::{Telemetry, sample_reading};
use std::collections::BTreeMap;

const READINGS: u64 = 100_000;

fn main() -> std::process::ExitCode {
    if std::env::args().len() > 1 {
        // The pipeline's command line, with the sample readings as `run --generate N`.
        return kpipe_runtime::cli::App::<Telemetry>::new()
            .generator(Telemetry::readings(), sample_reading)
            .main();
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
        batch.push(sample_reading(i));
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
    let frost = &report.consumers[0];
    println!(
        "frost alerts consumer: {} readings consumed, {} frost alerts raised, {} discarded after retries (not JSON, or implausible)",
        frost.consumed,
        kpipe_examples::telemetry::FROST_ALERTS.load(std::sync::atomic::Ordering::Relaxed),
        frost.discarded
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
