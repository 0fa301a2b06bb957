//! The command line every pipeline gets: `fn main() { Telemetry::main() }` is a whole
//! operations tool (feature `cli`).
//!
//! ```text
//! telemetry synth [--out template.json]          the CloudFormation template
//! telemetry spec                                 the pipeline's spec as JSON
//! telemetry estimate --records-per-sec N --record-size BYTES [--consumers N] [--partitions N] [--json]
//! telemetry plan    [--endpoint-url URL] [--region R]
//! telemetry apply   [--endpoint-url URL] [--region R] [--allow-replace]
//! telemetry destroy [--endpoint-url URL] [--region R]
//! ```
//!
//! Exit codes: 0 success; 1 an AWS call or a file write failed; 2 bad usage; 3 apply refused
//! a replacement (rerun with `--allow-replace`).

use crate::aws::{Aws, ProvisionError};
use crate::pipeline::Pipeline;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(about = "A kpipe pipeline: provision it, or print its template or spec")]
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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print what `apply` would change.
    Plan(Target),
    /// Create or update the streams, buckets, roles and delivery streams.
    Apply {
        #[command(flatten)]
        target: Target,
        /// Delete and recreate delivery streams whose changes cannot be made in place.
        #[arg(long)]
        allow_replace: bool,
    },
    /// Delete the delivery streams, the streams and the roles kpipe created (buckets are kept).
    Destroy(Target),
    /// Print the CloudFormation template (or write it to `--out`).
    Synth {
        /// Write the template to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the pipeline's spec as JSON.
    Spec,
    /// Estimate shards, monthly cost, S3 objects and Lambda invocations for a load.
    Estimate {
        /// Records per second put on each stream.
        #[arg(long)]
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

async fn aws<P: Pipeline>(t: &Target) -> Aws<P> {
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
    Aws::new(&loader.load().await)
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(1)
}

/// Parses the command line and runs the command for pipeline `P`.
pub fn main<P: Pipeline>() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Spec => {
            println!("{}", P::SPEC.to_json());
            ExitCode::SUCCESS
        }
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
            let e = crate::estimate::estimate(P::SPEC, load, crate::estimate::Prices::default());
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&e).expect("estimates serialise")
                );
            } else {
                println!("{e}");
            }
            ExitCode::SUCCESS
        }
        Command::Synth { out } => {
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
                None => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
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
                    Command::Plan(t) => match aws::<P>(&t).await.plan().await {
                        Ok(plan) => {
                            println!("{plan}");
                            ExitCode::SUCCESS
                        }
                        Err(e) => fail(&e),
                    },
                    Command::Apply {
                        target,
                        allow_replace,
                    } => match aws::<P>(&target).await.apply(allow_replace).await {
                        Ok(report) => {
                            println!("{report}");
                            ExitCode::SUCCESS
                        }
                        Err(e @ ProvisionError::ReplacementRefused(_)) => {
                            eprintln!("error: {e}");
                            ExitCode::from(3)
                        }
                        Err(e) => fail(&e),
                    },
                    Command::Destroy(t) => match aws::<P>(&t).await.destroy().await {
                        Ok(report) => {
                            println!("{report}");
                            ExitCode::SUCCESS
                        }
                        Err(e) => fail(&e),
                    },
                    Command::Spec | Command::Synth { .. } | Command::Estimate { .. } => {
                        unreachable!("handled above")
                    }
                }
            })
        }
    }
}
