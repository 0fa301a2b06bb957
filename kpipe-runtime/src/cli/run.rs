//! `run`: the pipeline on the local engine, fed from an NDJSON file, stdin or a generator.

use super::{EXIT_FAILURE, EXIT_INCOMPLETE, EXIT_UNDELIVERED, Generator, fail, usage};
use crate::engine::RunReport;
use crate::engine::input::{FeedError, FeedReport, Feeder, Input};
use crate::pipeline::Pipeline;
use crate::spec::SourceSpec;
use clap::Args;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
#[cfg(feature = "aws")]
use std::sync::Arc;

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
    /// `s3`: write objects to the real buckets (AWS, or `--endpoint-url`) through
    /// object_store's Amazon S3 backend instead of under `--out`.
    #[arg(long, value_name = "WHERE", default_value = "dir", value_parser = ["dir", "s3"])]
    to: String,
    /// Also write `{"input": .., "run": ..}` (the input summary and the run report) as JSON.
    #[arg(long, value_name = "PATH")]
    report_json: Option<PathBuf>,
    /// Exit with 4 when records were not of the input's type or failed in the transform.
    #[arg(long)]
    strict: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
    /// How long an object write that fails or hangs is retried (backing off to every 5 s, as
    /// Firehose retries S3) before its records count as undelivered (exit code 5).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    write_deadline: f64,
    /// Read the records from the stream in Kinesis (AWS, or `--endpoint-url`) instead of a
    /// file, stdin or the generator.
    #[arg(long, value_name = "SOURCE", default_value = "input", value_parser = ["input", "kinesis"])]
    source: String,
    /// With `--source kinesis` or `--to s3`: send AWS calls to this endpoint (moto, LocalStack).
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
    /// With `--source kinesis` or `--to s3`: the region; default: the pipeline's `region`.
    #[arg(long)]
    region: Option<String>,
    /// With `--source kinesis`: where shards without a checkpoint start: `latest`,
    /// `trim-horizon`, or a time (RFC 3339, or ms since the Unix epoch).
    #[arg(long, value_name = "POSITION", default_value = "latest")]
    from: String,
    /// With `--source kinesis`: read every shard to its current end, flush, save the
    /// checkpoints and exit. Without it, read until Ctrl-C, then flush and save.
    #[arg(long)]
    drain: bool,
    /// With `--source kinesis`: the checkpoint file (per shard, the last record delivered).
    #[arg(long, value_name = "PATH", default_value = "kpipe-checkpoints.json")]
    checkpoints: PathBuf,
    /// With `--source kinesis`: at most N records per GetRecords call (1-10000).
    #[arg(long, value_name = "N")]
    page_size: Option<u32>,
    /// With `--source kinesis` (without `--drain`): save checkpoints every this many seconds
    /// while reading, once what was read is delivered (buffers are written early for it).
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    checkpoint_every: f64,
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
    if args.source == "kinesis" {
        #[cfg(feature = "aws")]
        return from_kinesis::<P>(args, input).await;
        #[cfg(not(feature = "aws"))]
        return usage(&super::without_aws("run --source kinesis"));
    }
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

    let engine = match builder::<P>(&args).await {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let engine = match engine.start() {
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
        Err(e) => return stopped(e),
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
        eprintln!(
            "error: a record is unaccounted for (received != delivered + dropped + failed + undelivered)"
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    if report.undelivered() > 0 {
        eprintln!(
            "error: {} records were not delivered: the store did not acknowledge their objects (see the errors above)",
            report.undelivered()
        );
        return ExitCode::from(EXIT_UNDELIVERED);
    }
    if report.not_backed_up() > 0 {
        eprintln!(
            "error: {} source records were not backed up: the store did not acknowledge their backup objects (see the errors above)",
            report.not_backed_up()
        );
        return ExitCode::from(EXIT_UNDELIVERED);
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
        // Problems quote input lines: printed without their control characters.
        eprintln!("  {}", super::printable(p.to_string().as_bytes()));
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

#[cfg(feature = "aws")]
/// `run --source kinesis --drain`: the stream in Kinesis read to its current end into the
/// local engine; checkpoints saved once every buffer is flushed (at least once).
async fn from_kinesis<P: Pipeline>(args: RunArgs, input: Input) -> ExitCode {
    use crate::kinesis::{CheckpointStore, FileCheckpoints, KinesisReader, StartAt};
    let Input::Stream(stream) = input else {
        return usage(&"--source kinesis reads a stream; this input is a Direct PUT delivery");
    };
    let start = match args.from.as_str() {
        "latest" => StartAt::Latest,
        "trim-horizon" => StartAt::TrimHorizon,
        time => match time.parse::<i64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(time)
                .ok()
                .map(|t| t.timestamp_millis())
        }) {
            Some(ms) => StartAt::AtTimestamp(ms),
            None => {
                return usage(&format!(
                    "--from takes `latest`, `trim-horizon`, an RFC 3339 time (2026-11-27T10:00:00Z) or ms since the Unix epoch, not `{time}`"
                ));
            }
        },
    };
    let target = super::Target {
        endpoint_url: args.endpoint_url.clone(),
        region: args.region.clone(),
        max_attempts: super::DEFAULT_MAX_ATTEMPTS,
    };
    let config = super::sdk_config::<P>(&target).await;
    let store = FileCheckpoints::new(&args.checkpoints);
    let engine = match builder::<P>(&args).await {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let engine = match engine.start() {
        Ok(engine) => engine,
        Err(e) => return fail(&e),
    };
    let mut reader = KinesisReader::new(&config, stream);
    if let Some(n) = args.page_size {
        reader = reader.page_size(n);
    }
    match std::time::Duration::try_from_secs_f64(args.checkpoint_every) {
        Ok(every) if !every.is_zero() => reader = reader.checkpoint_every(every),
        _ => {
            return usage(&format!(
                "--checkpoint-every takes a positive number of seconds, not `{}`",
                args.checkpoint_every
            ));
        }
    }
    let read = if args.drain {
        reader.drain_into(&engine, start, &store).await
    } else {
        // Until Ctrl-C (SIGINT): then everything read is delivered and checkpointed.
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping: delivering what was read, then saving the checkpoints");
        };
        reader.read_until(&engine, start, &store, stop).await
    };
    // Whatever was read is delivered before anything else happens.
    let report = match engine.shutdown().await {
        Ok(r) => r,
        Err(e) => return stopped(e),
    };
    println!("{report}");
    let read = match read {
        Ok(read) => read,
        Err(e) => {
            return fail(&format!(
                "{e} (checkpoints not moved; what was read is delivered, and will be read again)"
            ));
        }
    };
    eprintln!(
        "\nkinesis: {} records read ({} GetRecords calls, {} read again after an unfinished run, {} over the declared limits sent to the error output, checkpoints saved {} times while reading); per shard: {}",
        read.records,
        read.calls,
        read.reread,
        read.rejected,
        read.saved,
        read.per_shard
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(path) = &args.report_json {
        let json = serde_json::json!({ "input": read, "run": report });
        let text = serde_json::to_string_pretty(&json).expect("reports serialise");
        if let Err(e) = std::fs::write(path, text + "\n") {
            return fail(&format!("{}: {e}", path.display()));
        }
    }
    if !report.is_conserved() {
        eprintln!("error: a record is unaccounted for; checkpoints not moved");
        return ExitCode::from(EXIT_FAILURE);
    }
    if report.undelivered() > 0 {
        eprintln!(
            "error: {} records were not delivered (see the errors above); checkpoints not moved: the next run reads them again",
            report.undelivered()
        );
        return ExitCode::from(EXIT_UNDELIVERED);
    }
    if report.not_backed_up() > 0 {
        eprintln!(
            "error: {} source records were not backed up (see the errors above); checkpoints not moved: the next run reads them again",
            report.not_backed_up()
        );
        return ExitCode::from(EXIT_UNDELIVERED);
    }
    if let Err(e) = store.save(&read.checkpoints) {
        return fail(&format!("{}: {e}", args.checkpoints.display()));
    }
    eprintln!("checkpoints saved to {}", args.checkpoints.display());
    let failed: u64 = report.deliveries.iter().map(|d| d.failed).sum();
    if args.strict && failed > 0 {
        return ExitCode::from(EXIT_INCOMPLETE);
    }
    ExitCode::SUCCESS
}

/// A shutdown that failed: the run's report too when there is one (a delivery that stopped on
/// a bug still accounts for every record). Checkpoints are not saved.
fn stopped(e: crate::engine::EngineError) -> ExitCode {
    if let crate::engine::EngineError::Stopped { report, .. } = &e {
        println!("{report}");
    }
    fail(&e)
}

/// The engine's builder: objects under `--out`, or with `--to s3` in the pipeline's buckets
/// through object_store's Amazon S3 backend (path-style, the SDK configuration's endpoint,
/// region and credentials, so profiles and SSO work too).
async fn builder<P: Pipeline>(args: &RunArgs) -> Result<crate::engine::LocalBuilder<P>, String> {
    let deadline = std::time::Duration::try_from_secs_f64(args.write_deadline).map_err(|_| {
        format!(
            "--write-deadline takes a number of seconds, 0 or more, not `{}`",
            args.write_deadline
        )
    })?;
    let builder = crate::engine::LocalBuilder::<P>::new()
        .root(&args.out)
        .progress(!args.quiet)
        .write_deadline(deadline);
    if args.to != "s3" {
        return Ok(builder);
    }
    #[cfg(not(feature = "aws"))]
    return Err(super::without_aws("run --to s3"));
    #[cfg(feature = "aws")]
    s3_stores(args, builder).await
}

/// `--to s3`: a store per bucket of the pipeline.
#[cfg(feature = "aws")]
async fn s3_stores<P: Pipeline>(
    args: &RunArgs,
    builder: crate::engine::LocalBuilder<P>,
) -> Result<crate::engine::LocalBuilder<P>, String> {
    use aws_sdk_kinesis::config::ProvideCredentials;
    use object_store::aws::AmazonS3Builder;
    let target = super::Target {
        endpoint_url: args.endpoint_url.clone(),
        region: args.region.clone(),
        max_attempts: super::DEFAULT_MAX_ATTEMPTS,
    };
    let config = super::sdk_config::<P>(&target).await;
    let region = config
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    // Fail now, with the reason, rather than at the first object write.
    if let Some(p) = config.credentials_provider() {
        p.provide_credentials()
            .await
            .map_err(|e| format!("AWS credentials for S3: {e}"))?;
    }
    let mut stores: HashMap<String, Arc<dyn object_store::ObjectStore>> = HashMap::new();
    for s3 in P::SPEC.destinations {
        if stores.contains_key(s3.bucket) {
            continue;
        }
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(s3.bucket)
            .with_region(&region)
            .with_virtual_hosted_style_request(false);
        if let Some(url) = &args.endpoint_url {
            b = b.with_endpoint(url).with_allow_http(true);
        }
        if let Some(provider) = config.credentials_provider() {
            // Fetched from the SDK's chain again before they expire, not copied once.
            b = b.with_credentials(Arc::new(crate::aws::credentials::SdkCredentials::new(
                provider,
            )));
        }
        let store = b
            .build()
            .map_err(|e| format!("s3 bucket {}: {e}", s3.bucket))?;
        stores.insert(s3.bucket.to_owned(), Arc::new(store));
    }
    Ok(builder.store_per_bucket(move |bucket| {
        Arc::clone(
            stores
                .get(bucket)
                .expect("run: every destination's bucket has a store"),
        )
    }))
}
