//! The quickstart's readings as a Parquet data lake, on the local engine.
//!
//! `cargo run --release --example lake_parquet` puts 100,000 readings on the `lake-readings`
//! stream. The engine runs the quickstart's transform, partitions the results by site, and
//! converts each buffer to Parquet as Firehose would: the columns come from the `Enriched`
//! type (the Glue table `telemetry.readings`), and a record that does not fit them gets a
//! `format-conversion-failed` error document. The files land under
//! `./kpipe-data/acme-lake/`; the example reads one back and prints its schema.
//!
//! With a subcommand it is the pipeline's command line instead: `synth` prints the
//! CloudFormation template with the Glue database and table and the delivery stream's
//! DataFormatConversionConfiguration, `plan` / `apply` / `destroy` provision it (feature
//! `aws`), `run readings.ndjson` runs NDJSON readings through the same engine.

use kpipe_examples::lake::{Lake, sample_reading};

const READINGS: u64 = 100_000;

fn main() -> std::process::ExitCode {
    if std::env::args().len() > 1 {
        return kpipe_runtime::cli::App::<Lake>::new()
            .generator(Lake::readings(), sample_reading)
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
    let engine = Lake::local().root(root).progress(true).start()?;
    let readings = engine.producer(Lake::readings())?;
    let mut batch = Vec::with_capacity(500);
    for i in 0..READINGS {
        batch.push(sample_reading(i));
        if batch.len() == 500 {
            readings.put_batch(&batch).await?;
            batch.clear();
        }
    }
    if !batch.is_empty() {
        readings.put_batch(&batch).await?;
    }
    let report = engine.shutdown().await?;
    println!("{report}\n");

    let table = Lake::spec().destinations[0]
        .conversion
        .ok_or("the lake converts to Parquet")?;
    println!(
        "Glue table {}.{} (derived from `Enriched`):",
        table.table.database, table.table.name
    );
    for c in table.columns()?.columns {
        println!("  {:<12} {}", c.name, c.ty);
    }
    let d = &report.deliveries[0];
    println!(
        "\n{} Parquet objects under {}/acme-lake/readings/, one per site and buffer:",
        d.objects.len(),
        root.display()
    );
    for key in d.objects.iter().take(6) {
        println!("  {key}");
    }
    if !report.is_conserved() {
        return Err("a record is unaccounted for".into());
    }
    Ok(())
}
