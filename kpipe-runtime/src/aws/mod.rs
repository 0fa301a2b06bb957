//! Provisioning against AWS (or any endpoint, such as moto): `plan`, `apply`, `destroy`.
//! Feature `aws`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! # kpipe_runtime::pipeline! { pipeline Telemetry { } }
//! let config = aws_config::load_from_env().await; // honours AWS_ENDPOINT_URL
//! let aws = kpipe_runtime::aws::Aws::<Telemetry>::new(&config);
//! let plan = aws.plan().await?;
//! println!("{plan}");
//! let report = aws.apply(false).await?; // refuses replacements unless allowed
//! # Ok(()) }
//! ```
//!
//! - `plan` reads the current state (Describe calls) and compares it with the declaration
//!   after normalising AWS's defaults ([`plan`] is pure and unit-tested).
//! - `apply` creates what is missing and updates what differs, waiting for each resource to
//!   be ready before the next uses it: buckets and roles, the Lambda functions with their code
//!   (built with cargo-lambda, [`functions`]), streams, delivery streams, mappings. It is
//!   idempotent and resumes a partial apply. Replacements (dynamic partitioning turned on or
//!   off, a new source) are refused unless allowed.
//! - `destroy` deletes what kpipe created and only that; buckets
//!   are kept (kpipe never deletes data) and reported.
//!
//! Roles, policies and tags come from [`crate::desired`], the model the CloudFormation
//! template renders too. Calls are retried by the SDK in adaptive mode
//! ([`Aws::with_max_attempts`]).

mod apply;
// The SDK's credentials for object_store's S3 backend: only for the command line's `run --to s3`.
#[cfg(feature = "cli")]
pub(crate) mod credentials;
mod describe;
mod destroy;
pub mod functions;
mod iam;
// Test harnesses, not part of the API (feature `test-support`).
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod kinesalite;
#[cfg(feature = "test-support")]
#[doc(hidden)]
pub mod moto;
pub mod plan;
mod prune;
mod wait;

/// The AWS SDK crates kpipe provisions with, for programs and tests that look at what
/// `apply` made (or set something up around it) without depending on them separately.
pub mod sdk {
    pub use aws_config;
    pub use aws_sdk_firehose;
    pub use aws_sdk_iam;
    pub use aws_sdk_kinesis;
    pub use aws_sdk_lambda;
    pub use aws_sdk_s3;
}

use self::functions::CodeSource;
pub use self::prune::Prune;
use crate::artifacts::Artifacts;
use crate::desired::Env;
use crate::pipeline::Pipeline;
use crate::spec::PipelineSpec;
use std::fmt;
use std::path::PathBuf;

/// A provisioning step that failed: which resource, which action, and AWS's answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProvisionError {
    /// An AWS call failed.
    Call {
        /// `kinesis stream sensor-readings`, ...
        resource: String,
        /// `create`, `describe`, ...
        action: &'static str,
        /// The SDK's error, with its context.
        message: String,
    },
    /// A resource did not become ACTIVE (or gone) in time, or ended in a failed state.
    NotReady {
        /// The resource.
        resource: String,
        /// Its last status.
        status: String,
    },
    /// The plan replaces resources and replacements were not allowed.
    ReplacementRefused(Vec<String>),
    /// A function's code could not be built or read.
    Build {
        /// `the code of lambda function ...`.
        resource: String,
        /// Why, with the command to run when something is missing.
        message: String,
    },
    /// `destroy` found declared resources that exist but are not the pipeline's (no
    /// `kpipe:pipeline` tag with its name): nothing was deleted.
    NotOwned {
        /// The pipeline.
        pipeline: String,
        /// The resources.
        resources: Vec<String>,
    },
    /// The declaration cannot be provisioned as it is: a Parquet or ORC destination's record
    /// type has a field no Glue column holds.
    InvalidSpec(String),
}

impl fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProvisionError::Call {
                resource,
                action,
                message,
            } => write!(f, "could not {action} {resource}: {message}"),
            ProvisionError::NotReady { resource, status } => {
                write!(f, "{resource} did not become ready (status {status})")
            }
            ProvisionError::ReplacementRefused(what) => write!(
                f,
                "the plan replaces {}; rerun with --allow-replace (or apply(true)) to delete and recreate",
                what.join(", ")
            ),
            ProvisionError::Build { resource, message } => {
                write!(f, "could not build {resource}: {message}")
            }
            ProvisionError::NotOwned {
                pipeline,
                resources,
            } => write!(
                f,
                "refusing to destroy: {} exist{} but {} not created by kpipe for pipeline \
                 {pipeline} (no `kpipe:pipeline = {pipeline}` tag), so they may hold another \
                 team's data; nothing was deleted. Rerun with --force to delete them anyway",
                resources.join(", "),
                if resources.len() == 1 { "s" } else { "" },
                if resources.len() == 1 { "was" } else { "were" },
            ),
            ProvisionError::InvalidSpec(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for ProvisionError {}

impl From<crate::artifacts::CodeError> for ProvisionError {
    fn from(e: crate::artifacts::CodeError) -> Self {
        ProvisionError::Build {
            resource: e.resource,
            message: e.message,
        }
    }
}

fn call_err<E: std::error::Error + 'static>(
    resource: &str,
    action: &'static str,
    e: E,
) -> ProvisionError {
    ProvisionError::Call {
        resource: resource.to_owned(),
        action,
        message: aws_sdk_kinesis::error::DisplayErrorContext(&e).to_string(),
    }
}

/// What `apply` or `destroy` did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ApplyReport {
    /// One line per action taken.
    pub actions: Vec<String>,
}

impl fmt::Display for ApplyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.actions.is_empty() {
            return f.write_str("Nothing to do.");
        }
        for a in &self.actions {
            writeln!(f, "{a}")?;
        }
        Ok(())
    }
}

/// Provisioning of pipeline `P` with the clients of one AWS configuration.
pub struct Aws<P> {
    kinesis: aws_sdk_kinesis::Client,
    firehose: aws_sdk_firehose::Client,
    s3: aws_sdk_s3::Client,
    iam: aws_sdk_iam::Client,
    sts: aws_sdk_sts::Client,
    lambda: aws_sdk_lambda::Client,
    logs: aws_sdk_cloudwatchlogs::Client,
    glue: aws_sdk_glue::Client,
    region: String,
    poll: std::time::Duration,
    artifacts: Artifacts,
    /// The endpoint is plain HTTP (a local emulator): a policy requiring TLS would refuse
    /// every request, so owned buckets do not get one.
    plain_http: bool,
    prune: Prune,
    _pipeline: std::marker::PhantomData<P>,
}

impl<P> fmt::Debug for Aws<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Aws").field("region", &self.region).finish()
    }
}

/// Attempts per AWS call by default (the SDK's adaptive retry mode backs off between them and
/// slows down when AWS throttles).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 8;

impl<P: Pipeline> Aws<P> {
    /// Clients from an `SdkConfig` (endpoint, region and credentials as configured; S3 uses
    /// path-style addressing, which local endpoints need), retrying each call up to
    /// [`DEFAULT_MAX_ATTEMPTS`] times in the SDK's adaptive retry mode.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self::with_max_attempts(config, DEFAULT_MAX_ATTEMPTS)
    }

    /// As [`Aws::new`], with `attempts` per call (1: no retries). Adaptive mode
    /// ("Retry behavior", <https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html>)
    /// also paces calls when AWS answers with throttling errors.
    pub fn with_max_attempts(config: &aws_config::SdkConfig, attempts: u32) -> Self {
        let retry = aws_config::retry::RetryConfig::adaptive().with_max_attempts(attempts.max(1));
        let config = config.to_builder().retry_config(retry).build();
        let s3 = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build();
        Aws {
            kinesis: aws_sdk_kinesis::Client::new(&config),
            firehose: aws_sdk_firehose::Client::new(&config),
            s3: aws_sdk_s3::Client::from_conf(s3),
            iam: aws_sdk_iam::Client::new(&config),
            sts: aws_sdk_sts::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            glue: aws_sdk_glue::Client::new(&config),
            region: config
                .region()
                .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string()),
            poll: std::time::Duration::from_millis(250),
            artifacts: Artifacts::default(),
            plain_http: config
                .endpoint_url()
                .is_some_and(|u| u.starts_with("http://")),
            prune: Prune::Nothing,
            _pipeline: std::marker::PhantomData,
        }
    }

    /// Poll readiness this often (default 250 ms, growing to 5 s).
    pub fn poll_interval(mut self, every: std::time::Duration) -> Self {
        self.poll = every;
        self
    }

    /// Where the code of transform or consumer `stage` comes from (default
    /// [`CodeSource::Build`]: its `bin` target, built with cargo-lambda).
    pub fn lambda_code(mut self, stage: &str, source: CodeSource) -> Self {
        self.artifacts.sources.insert(stage.to_owned(), source);
        self
    }

    /// What `apply` deletes of what the declaration no longer has (default: nothing; `plan`
    /// lists it either way).
    pub fn prune(mut self, prune: Prune) -> Self {
        self.prune = prune;
        self
    }

    /// The `Cargo.toml` of the crate whose bin targets serve the functions (default: the
    /// crate cargo finds from the current directory).
    pub fn manifest_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.artifacts.manifest_path = Some(path.into());
        self
    }

    fn spec(&self) -> &'static PipelineSpec {
        P::SPEC
    }

    /// The references of this account and region (the account from STS).
    async fn env(&self) -> Result<Env, ProvisionError> {
        let id = self
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| call_err("the caller's account", "identify", e))?;
        Ok(Env::new(
            self.spec(),
            &self.region,
            id.account().unwrap_or("000000000000"),
        ))
    }
}
