//! `run`: the pipeline on the local engine, fed from an NDJSON file, stdin or a generator.

use super::{EXIT_FAILURE, EXIT_INCOMPLETE, Generator, fail, usage};
use crate::engine::RunReport;
use crate::engine::input::{FeedError, FeedReport, Feeder, Input};
use crate::pipeline::Pipeline;
use crate::spec::SourceSpec;
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The arguments of `run`.
#[derive(Args, Debug)]
pub(super) struct RunArgs {
    /// NDJSON file of records of the input's type, one per line; `-` reads stdin (the
    /// default when stdin is not a terminal).
    input: Option<PathBuf>,
    /// Put N records from the pipeline's built-in generator instead of reading input.
    #[arg(long, value_name = "N", conflicts_with = "input")]
    generate: Option<u64>,
    /// The stream (or Direct PUT delivery) to put records on, by stage or AWS name; needed
    /// only when the pipeline has several.
    #[arg(long, value_name = "STAGE")]
    into: Option<String>,
    /// Where S3 objects are written: one directory per bucket.
    #[arg(long, value_name = "DIR", default_value = "kpipe-data")]
    out: PathBuf,
    /// Also write `{"input": .., "run": ..}` (the input summary and the run report) as JSON.
    #[arg(long, value_name = "PATH")]
    report_json: Option<PathBuf>,
    /// Exit with 4 when records were not of the input's type or failed in the transform.
    #[arg(long)]
    strict: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// The pipeline's inputs: streams by stage id or AWS name, and Direct PUT deliveries.
fn resolve<P: Pipeline>(into: Option<&str>) -> Result<(Input, &'static str), String> {
    let mut inputs: Vec<(&'static str, &'static str, Input)> = P::streams()
        .into_iter()
        .map(|s| (s.spec().id, s.spec().name, Input::Stream(s)))
        .collect();
    inputs.extend(
        P::deliveries()
            .into_iter()
            .filter(|d| d.spec().source == SourceSpec::Direct)
            .map(|d| (d.spec().id, d.spec().name, Input::Direct(d))),
    );
    let names = || {
        inputs
            .iter()
            .map(|(id, _, _)| format!("`{id}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found = match into {
        Some(want) => inputs
            .iter()
            .position(|(id, name, _)| *id == want || *name == want)
            .ok_or_else(|| {
                format!(
                    "`{want}` is not a stream or a Direct PUT delivery of {}; its inputs: {}",
                    P::SPEC.name,
                    names()
                )
            })?,
        None if inputs.len() == 1 => 0,
        None if inputs.is_empty() => {
            return Err(format!(
                "{} has no stream or Direct PUT delivery",
                P::SPEC.name
            ));
        }
        None => {
            return Err(format!(
                "{} has several inputs; choose one with --into: {}",
                P::SPEC.name,
                names()
            ));
        }
    };
    let (id, _, input) = inputs.swap_remove(found);
    Ok((input, id))
}

pub(super) async fn run<P: Pipeline>(
    args: RunArgs,
    generators: &HashMap<&'static str, Generator>,
) -> ExitCode {
    let (input, id) = match resolve::<P>(args.into.as_deref()) {
        Ok(found) => found,
        Err(e) => return usage(&e),
    };
    let generator = match args.generate {
        Some(_) => match generators.get(id) {
            Some(g) => Some(g.clone()),
            None => {
                return usage(&format!(
                    "{} has no built-in generator for `{id}`; pass an NDJSON file, or `-` for stdin",
                    P::SPEC.name
                ));
            }
        },
        None => None,
    };
    let source = match (&args.input, &generator) {
        (Some(p), _) if p != Path::new("-") => match tokio::fs::File::open(p).await {
            Ok(f) => Source::File(tokio::io::BufReader::new(f)),
            Err(e) => return fail(&format!("{}: {e}", p.display())),
        },
        (Some(_), _) => Source::Stdin,
        (None, Some(g)) => Source::Generator(g.clone()),
        (None, None) if !std::io::stdin().is_terminal() => Source::Stdin,
        (None, None) => {
            return usage(&format!(
                "no input: pass an NDJSON file of records, `-` for stdin{}",
                if generators.is_empty() {
                    String::new()
                } else {
                    ", or --generate N".to_owned()
                }
            ));
        }
    };

    let engine = match crate::engine::LocalBuilder::<P>::new()
        .root(&args.out)
        .progress(!args.quiet)
        .start()
    {
        Ok(engine) => engine,
        Err(e) => return fail(&e),
    };
    let mut feeder = match Feeder::new(&engine, input) {
        Ok(f) => f,
        Err(e) => return fail(&e),
    };
    // A read error stops the input, not the run: what was put is still delivered and reported.
    let fed = match source {
        Source::File(reader) => feeder.feed_lines(reader).await,
        Source::Stdin => {
            feeder
                .feed_lines(tokio::io::BufReader::new(tokio::io::stdin()))
                .await
        }
        Source::Generator(g) => generate(&mut feeder, &g, args.generate.unwrap_or(0)).await,
    };
    let finished = feeder.finish().await;
    let report = match engine.shutdown().await {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let feed = match finished {
        Ok(feed) => feed,
        Err(e) => return fail(&e),
    };

    println!("{report}");
    print_summary(&feed, &report, &args.out);
    if let Some(path) = &args.report_json {
        let json = serde_json::json!({ "input": feed, "run": report });
        let text = serde_json::to_string_pretty(&json).expect("reports serialise");
        if let Err(e) = std::fs::write(path, text + "\n") {
            return fail(&format!("{}: {e}", path.display()));
        }
    }
    if let Err(e) = fed {
        return fail(&e);
    }
    if !report.is_conserved() {
        eprintln!("error: a record is unaccounted for (received != delivered + dropped + failed)");
        return ExitCode::from(EXIT_FAILURE);
    }
    let failed: u64 = report.deliveries.iter().map(|d| d.failed).sum();
    if feed.rejected > 0 || (args.strict && (feed.not_of_type > 0 || failed > 0)) {
        return ExitCode::from(EXIT_INCOMPLETE);
    }
    ExitCode::SUCCESS
}

enum Source {
    File(tokio::io::BufReader<tokio::fs::File>),
    Stdin,
    Generator(Generator),
}

async fn generate(feeder: &mut Feeder, g: &Generator, n: u64) -> Result<(), FeedError> {
    for i in 1..=n {
        match g(i) {
            Ok(bytes) => feeder.feed(i, bytes).await?,
            Err(message) => feeder.reject(i, message),
        }
    }
    Ok(())
}

/// The input summary and where objects went, on stderr (the report is on stdout).
fn print_summary(feed: &FeedReport, report: &RunReport, out: &Path) {
    eprintln!(
        "\ninput: {} records, {} put, {} not of the input's type (put as-is), {} rejected (not put)",
        feed.lines, feed.put, feed.not_of_type, feed.rejected
    );
    for p in &feed.problems {
        eprintln!("  {p}");
    }
    let listed = feed.problems.len() as u64;
    if feed.not_of_type + feed.rejected > listed {
        eprintln!(
            "  ... and {} more",
            feed.not_of_type + feed.rejected - listed
        );
    }
    let mut by_folder: BTreeMap<&str, usize> = BTreeMap::new();
    for d in &report.deliveries {
        for key in d.objects.iter().chain(&d.error_objects) {
            let folder = key.rsplit_once('/').map_or(key.as_str(), |(p, _)| p);
            *by_folder.entry(folder).or_default() += 1;
        }
    }
    if !by_folder.is_empty() {
        eprintln!("objects written under {}/:", out.display());
        for (folder, n) in by_folder {
            eprintln!("  {folder}/  ({n} object{})", if n == 1 { "" } else { "s" });
        }
    }
}
