//! The command line every pipeline gets: `fn main() { Telemetry::main() }` is a whole
//! operations tool (feature `cli`).
//!
//! ```text
//! telemetry run [INPUT|-] [--generate N] [--into STAGE] [--out DIR] [--report-json PATH] [--strict]
//! telemetry run --source kinesis [--drain] [--from latest|trim-horizon|MS] [--checkpoints PATH] [--to s3] [--endpoint-url URL]
//! telemetry tail [STREAM] [--from trim-horizon|latest] [--follow] [-n N] [--endpoint-url URL]
//! telemetry synth [--out template.json]          the CloudFormation template
//! telemetry spec                                 the pipeline's spec as JSON
//! telemetry estimate --records-per-sec N --record-size BYTES [--consumers N] [--partitions N] [--json]
//! telemetry plan    [--endpoint-url URL] [--region R]
//! telemetry apply   [--endpoint-url URL] [--region R] [--allow-replace]
//! telemetry destroy [--endpoint-url URL] [--region R]
//! ```
//!
//! `--help` lists the pipeline's stages. Exit codes a script can rely on:
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | success |
//! | 1 | a failure: an AWS call, reading the input, writing a file, the engine |
//! | 2 | bad usage: unknown flag, missing input, unknown stage (clap's code for usage errors) |
//! | 3 | `apply` refused a replacement (rerun with `--allow-replace`) |
//! | 4 | `run` finished, but input lines were rejected at put time (too large, bad partition key), or, with `--strict`, records were not of the stream's type or failed in the transform |
//!
//! A pipeline with a record generator (for demos and load tests) registers it with [`App`]:
//!
//! ```no_run
//! # #[derive(serde::Serialize, serde::Deserialize)]
//! # pub struct Reading { sensor_id: String, celsius: f64 }
//! # kpipe_runtime::pipeline! {
//! #     pipeline Telemetry {
//! #         stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
//! #         s3 lake: Reading { bucket: "acme-telemetry" }
//! #         delivery to_lake: readings -> lake;
//! #     }
//! # }
//! fn main() -> std::process::ExitCode {
//!     kpipe_runtime::cli::App::<Telemetry>::new()
//!         .generator(Telemetry::readings(), |i| Reading {
//!             sensor_id: format!("s-{}", i % 100),
//!             celsius: 20.0,
//!         })
//!         .main() // `telemetry run --generate 10000`
//! }
//! ```

mod assets;
mod help;
mod run;
mod tail;

#[cfg(feature = "aws")]
use crate::aws::functions::CodeSource;
#[cfg(feature = "aws")]
use crate::aws::{Aws, ProvisionError};
use crate::pipeline::{Pipeline, StreamDef};
use bytes::Bytes;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::collections::HashMap;
use std::ffi::OsString;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code of a failure (an AWS call, I/O, the engine).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code of bad usage (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `apply` refusing a replacement.
pub const EXIT_REPLACEMENT_REFUSED: u8 = 3;
/// Exit code of `run` when input was rejected (or, with `--strict`, records failed).
pub const EXIT_INCOMPLETE: u8 = 4;
/// Exit code of `run` when records were not delivered: the store did not acknowledge their
/// object before the write deadline (`--write-deadline`); checkpoints were not saved past them.
pub const EXIT_UNDELIVERED: u8 = 5;
/// `destroy` refused: declared resources exist that are not tagged as the pipeline's (they
/// may be another team's); nothing was deleted. `--force` deletes them anyway.
pub const EXIT_NOT_OWNED: u8 = 6;

#[derive(Parser, Debug)]
#[command(about = "A kpipe pipeline: run it locally, provision it, or print its template or spec")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug)]
struct Target {
    /// Send AWS calls to this endpoint (moto, LocalStack); default: `AWS_ENDPOINT_URL` or AWS.
    #[arg(long)]
    endpoint_url: Option<String>,
    /// The region; default: the pipeline's `region`, then the AWS configuration.
    #[arg(long)]
    region: Option<String>,
    /// Attempts per AWS call, in the SDK's adaptive retry mode (which also slows down when
    /// AWS throttles).
    #[arg(long, default_value_t = DEFAULT_MAX_ATTEMPTS)]
    max_attempts: u32,
}

/// Where the functions' code comes from (default: each stage's `bin`, built with
/// `cargo lambda build --release` for its architecture).
#[derive(Args, Debug, Default)]
struct CodeArgs {
    /// Deploy this zip for a transform or consumer, built elsewhere: `STAGE=PATH`
    /// (repeatable).
    #[arg(long = "lambda-zip", value_name = "STAGE=PATH", value_parser = stage_path)]
    zips: Vec<(String, PathBuf)>,
    /// Deploy this `bootstrap` executable for a stage, zipped by kpipe: `STAGE=PATH`
    /// (repeatable).
    #[arg(long = "lambda-binary", value_name = "STAGE=PATH", value_parser = stage_path)]
    binaries: Vec<(String, PathBuf)>,
    /// The Cargo.toml of the crate whose bin targets serve the functions.
    #[arg(long)]
    manifest_path: Option<PathBuf>,
}

/// `STAGE=PATH`.
fn stage_path(s: &str) -> Result<(String, PathBuf), String> {
    match s.split_once('=') {
        Some((stage, path)) if !stage.is_empty() && !path.is_empty() => {
            Ok((stage.to_owned(), PathBuf::from(path)))
        }
        _ => Err(format!(
            "`{s}`: expected STAGE=PATH, like `enrich=target/enrich.zip`"
        )),
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the pipeline on the local engine: NDJSON records in, S3 objects under `--out`.
    Run(Box<run::RunArgs>),
    /// Print a stream's records in Kinesis, decoded as its record type.
    Tail(tail::TailArgs),
    /// Print what `apply` would change (building the functions' code to compare it).
    Plan {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        code: CodeArgs,
    },
    /// Create or update the whole pipeline: buckets, roles, the Lambda functions with their
    /// code, streams, delivery streams and event source mappings.
    Apply {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        code: CodeArgs,
        /// Delete and recreate delivery streams whose changes cannot be made in place.
        #[arg(long)]
        allow_replace: bool,
        /// Delete the functions, delivery streams and roles kpipe created for the pipeline that
        /// the declaration no longer has (`plan` lists them as `- destroy`).
        #[arg(long)]
        prune: bool,
        /// With `--prune`: also delete streams the declaration no longer has, with their data.
        #[arg(long, requires = "prune")]
        prune_data: bool,
    },
    /// Delete the mappings, delivery streams, functions, streams and roles kpipe created for
    /// the pipeline (buckets are kept).
    Destroy {
        #[command(flatten)]
        target: Target,
        /// Also delete declared resources that are not tagged as this pipeline's.
        #[arg(long)]
        force: bool,
    },
    /// Print the CloudFormation template (or write it to `--out`).
    Synth {
        /// Write the template to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Also build each function's zip into this folder (as `kpipe/<pipeline>/<stage>-<hash>.zip`,
        /// with `assets.json` and `template.json`), the template's code parameters defaulting
        /// to them in `--asset-bucket`.
        #[arg(long, value_name = "DIR")]
        assets: Option<PathBuf>,
        /// The S3 bucket the zips are uploaded to (with `--assets`).
        #[arg(long, value_name = "BUCKET", requires = "assets")]
        asset_bucket: Option<String>,
        #[command(flatten)]
        code: CodeArgs,
    },
    /// Print the pipeline's spec as JSON.
    Spec,
    /// Estimate shards, monthly cost, S3 objects and Lambda invocations for a load.
    Estimate {
        /// Records per second put on each stream (a finite number, 0 or more).
        #[arg(long, value_parser = load_rate)]
        records_per_sec: f64,
        /// Average record size in bytes.
        #[arg(long)]
        record_size: u64,
        /// Consumers reading each stream.
        #[arg(long, default_value_t = 1)]
        consumers: u32,
        /// Distinct dynamic partitions the records spread over.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `--records-per-sec`: a finite rate, 0 or more (not negative, NaN or infinite).
fn load_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        Ok(_) => Err(format!(
            "`{s}` is not a load: give a finite number of records per second, 0 or more"
        )),
        Err(e) => Err(format!("`{s}`: {e}")),
    }
}

/// Attempts per AWS call (the same as `kpipe_runtime::aws::DEFAULT_MAX_ATTEMPTS`).
const DEFAULT_MAX_ATTEMPTS: u32 = 8;

/// What a command that talks to AWS says in a program built without the `aws` feature.
#[cfg_attr(feature = "aws", allow(dead_code))]
fn without_aws(command: &str) -> String {
    format!(
        "`{command}` talks to AWS, and this program was built without kpipe-runtime's `aws` \
         feature (which brings the AWS SDK); build it with that feature, for the quickstart: \
         `cargo run --release --example quickstart --features aws -- {}`",
        command.split_whitespace().next().unwrap_or(command)
    )
}

#[cfg(feature = "aws")]
async fn aws<P: Pipeline>(t: &Target, code: &CodeArgs) -> Result<Aws<P>, ProvisionError> {
    let mut aws = Aws::with_max_attempts(&sdk_config::<P>(t).await, t.max_attempts);
    for (stage, source) in code
        .zips
        .iter()
        .map(|(s, p)| (s, CodeSource::Zip(p.clone())))
        .chain(
            code.binaries
                .iter()
                .map(|(s, p)| (s, CodeSource::Binary(p.clone()))),
        )
    {
        if crate::desired::functions(P::SPEC)
            .iter()
            .all(|(id, _)| id != stage)
        {
            let stages: Vec<&str> = crate::desired::functions(P::SPEC)
                .iter()
                .map(|(id, _)| *id)
                .collect();
            return Err(ProvisionError::Build {
                resource: format!("stage `{stage}`"),
                message: format!(
                    "the pipeline has no transform or consumer `{stage}` (it has: {})",
                    stages.join(", ")
                ),
            });
        }
        aws = aws.lambda_code(stage, source);
    }
    if let Some(m) = &code.manifest_path {
        aws = aws.manifest_path(m);
    }
    Ok(aws)
}

/// The SDK configuration for `t`: its endpoint, and its region or the pipeline's.
#[cfg(feature = "aws")]
async fn sdk_config<P: Pipeline>(t: &Target) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(url) = &t.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = t
        .region
        .clone()
        .or_else(|| P::SPEC.region.map(str::to_owned))
    {
        loader = loader.region(aws_config::Region::new(region));
    }
    loader.load().await
}

/// Bytes from outside (a record's data, an input line) as one printable line: invalid UTF-8
/// replaced, and control characters (C0, DEL and C1, which terminals read as escape sequences)
/// written as `\u{..}`, so a record cannot move the cursor, change colours or retitle the
/// terminal of whoever tails the stream.
fn printable(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if !text.chars().any(char::is_control) {
        return text.into_owned();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_FAILURE)
}

fn usage(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(EXIT_USAGE)
}

/// Parses the command line and runs the command for pipeline `P` (what the generated
/// `Telemetry::main()` calls). [`App`] adds record generators.
pub fn main<P: Pipeline>() -> ExitCode {
    App::<P>::new().main()
}

/// A record generator, type-erased: record number (from 1) to JSON bytes.
type Generator = Arc<dyn Fn(u64) -> Result<Bytes, String> + Send + Sync>;

/// The command line of pipeline `P`, with optional record generators for `run --generate`.
pub struct App<P> {
    generators: HashMap<&'static str, Generator>,
    _pipeline: PhantomData<P>,
}

impl<P> std::fmt::Debug for App<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut streams: Vec<_> = self.generators.keys().collect();
        streams.sort();
        f.debug_struct("App").field("generators", &streams).finish()
    }
}

impl<P: Pipeline> Default for App<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Pipeline> App<P> {
    /// The command line without generators.
    pub fn new() -> Self {
        App {
            generators: HashMap::new(),
            _pipeline: PhantomData,
        }
    }

    /// Registers `generate(n)` (n = 1, 2, ...) as the record generator of `stream`, for
    /// `run --generate N`.
    pub fn generator<T: serde::Serialize + 'static>(
        mut self,
        stream: StreamDef<T>,
        generate: impl Fn(u64) -> T + Send + Sync + 'static,
    ) -> Self {
        let codec = stream.codec();
        self.generators.insert(
            stream.spec().id,
            Arc::new(move |n| {
                codec
                    .encode(&generate(n))
                    .map(Bytes::from)
                    .map_err(|e| format!("the generated record does not encode as JSON: {e}"))
            }),
        );
        self
    }

    /// Parses the process's arguments and runs the command.
    pub fn main(self) -> ExitCode {
        self.main_from(std::env::args_os())
    }

    /// Parses `args` (the first is the program name) and runs the command.
    pub fn main_from(
        self,
        args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    ) -> ExitCode {
        let command = Cli::command()
            .name(P::SPEC.name.to_lowercase())
            .about(help::about(P::SPEC))
            .after_help(help::stages(P::SPEC));
        let cli = match command
            .try_get_matches_from(args)
            .and_then(|m| Cli::from_arg_matches(&m))
        {
            Ok(cli) => cli,
            Err(e) => e.exit(),
        };
        crate::logging::init(false);
        self.dispatch(cli.command)
    }

    fn dispatch(self, command: Command) -> ExitCode {
        // A record type without Glue columns (`format: parquet`) stops every command, naming
        // the field, before anything is built or called.
        if let Err(e) = P::SPEC.check() {
            return fail(&e);
        }
        match command {
            Command::Spec => print_out(&P::SPEC.to_json()),
            Command::Estimate {
                records_per_sec,
                record_size,
                consumers,
                partitions,
                json,
            } => {
                let load = crate::estimate::Load {
                    records_per_sec,
                    record_bytes: record_size,
                    consumers,
                    partitions,
                };
                let e =
                    crate::estimate::estimate(P::SPEC, load, crate::estimate::Prices::default());
                if json {
                    print_out(&serde_json::to_string_pretty(&e).expect("estimates serialise"))
                } else {
                    print_out(&e.to_string())
                }
            }
            Command::Synth {
                assets: Some(dir),
                asset_bucket,
                code,
                ..
            } => {
                let bucket = asset_bucket
                    .unwrap_or_else(|| format!("{}-kpipe-assets", P::SPEC.name.to_lowercase()));
                assets::write::<P>(&dir, &bucket, &code)
            }
            Command::Synth { out, .. } => {
                let text = serde_json::to_string_pretty(&crate::cloudformation::template(P::SPEC))
                    .expect("templates serialise");
                match out {
                    Some(path) => match std::fs::write(&path, text + "\n") {
                        Ok(()) => {
                            eprintln!("wrote {}", path.display());
                            ExitCode::SUCCESS
                        }
                        Err(e) => fail(&format!("{}: {e}", path.display())),
                    },
                    None => print_out(&text),
                }
            }
            command => {
                let runtime = match tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => return fail(&e),
                };
                runtime.block_on(async move {
                    match command {
                        Command::Run(args) => run::run::<P>(*args, &self.generators).await,
                        #[cfg(not(feature = "aws"))]
                        Command::Tail(_) => usage(&without_aws("tail")),
                        #[cfg(not(feature = "aws"))]
                        Command::Plan { .. } => usage(&without_aws("plan")),
                        #[cfg(not(feature = "aws"))]
                        Command::Apply { .. } => usage(&without_aws("apply")),
                        #[cfg(not(feature = "aws"))]
                        Command::Destroy { .. } => usage(&without_aws("destroy")),
                        #[cfg(feature = "aws")]
                        Command::Tail(args) => tail::tail::<P>(args).await,
                        #[cfg(feature = "aws")]
                        Command::Plan { target, code } => {
                            let aws = match aws::<P>(&target, &code).await {
                                Ok(aws) => aws,
                                Err(e) => return usage(&e),
                            };
                            match aws.plan().await {
                                Ok(plan) => {
                                    println!("{plan}");
                                    ExitCode::SUCCESS
                                }
                                Err(e) => fail(&e),
                            }
                        }
                        #[cfg(feature = "aws")]
                        Command::Apply {
                            target,
                            code,
                            allow_replace,
                            prune,
                            prune_data,
                        } => {
                            let aws = match aws::<P>(&target, &code).await {
                                Ok(aws) => aws.prune(match (prune, prune_data) {
                                    (_, true) => crate::aws::Prune::WithData,
                                    (true, false) => crate::aws::Prune::Resources,
                                    (false, false) => crate::aws::Prune::Nothing,
                                }),
                                Err(e) => return usage(&e),
                            };
                            match aws.apply(allow_replace).await {
                                Ok(report) => {
                                    println!("{report}");
                                    ExitCode::SUCCESS
                                }
                                Err(e @ ProvisionError::ReplacementRefused(_)) => {
                                    eprintln!("error: {e}");
                                    ExitCode::from(EXIT_REPLACEMENT_REFUSED)
                                }
                                Err(e) => fail(&e),
                            }
                        }
                        #[cfg(feature = "aws")]
                        Command::Destroy { target, force } => {
                            let aws = match aws::<P>(&target, &CodeArgs::default()).await {
                                Ok(aws) => aws,
                                Err(e) => return usage(&e),
                            };
                            match aws.destroy(force).await {
                                Ok(report) => {
                                    println!("{report}");
                                    ExitCode::SUCCESS
                                }
                                Err(e @ ProvisionError::NotOwned { .. }) => {
                                    eprintln!("error: {e}");
                                    ExitCode::from(EXIT_NOT_OWNED)
                                }
                                Err(e) => fail(&e),
                            }
                        }
                        Command::Spec | Command::Synth { .. } | Command::Estimate { .. } => {
                            unreachable!("handled above")
                        }
                    }
                })
            }
        }
    }
}

/// Prints `text` and a newline on stdout. A reader that went away (`| head`) ends the output
/// quietly, as `tail` does, instead of the panic `println!` makes of a broken pipe.
fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{text}").and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(&format!("writing to standard output: {e}")),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn printable_escapes_what_a_terminal_would_obey() {
        assert_eq!(super::printable(b"plain {\"a\":1}"), "plain {\"a\":1}");
        assert_eq!(
            super::printable("\x1b]0;pwned\x07\u{9b}2J\nx\u{7f}".as_bytes()),
            "\\u{1b}]0;pwned\\u{7}\\u{9b}2J\\u{a}x\\u{7f}"
        );
        assert_eq!(super::printable(b"\xff ok"), "\u{fffd} ok");
    }
}
