//! The Lambda functions of a pipeline: their code (built with cargo-lambda, or given), and
//! creating or updating them so that a second `apply` uploads nothing.
//!
//! Code is a zip holding one executable, `bootstrap`, for the `provided.al2023` runtime
//! ("Building Lambda functions with Rust",
//! <https://docs.aws.amazon.com/lambda/latest/dg/lambda-rust.html>). kpipe writes the zip
//! itself, with fixed timestamps and permissions, so the same binary always gives the same zip
//! and the same `CodeSha256` (the base64 SHA-256 of the zip, as `GetFunction` reports it):
//! that is how `plan` tells unchanged code from changed code.

use super::plan::FunctionState;
use super::{Aws, ProvisionError, call_err};
use crate::desired::Env;
use crate::pipeline::Pipeline;
use crate::spec::{Architecture, LambdaSpec};
use aws_sdk_lambda::types as lm;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The runtime kpipe deploys Rust functions on.
pub const RUNTIME: &str = "provided.al2023";

/// Where a function's code comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum CodeSource {
    /// Built from the stage's `bin` target with `cargo lambda build --release` for the declared
    /// architecture (the default).
    Build,
    /// A zip built elsewhere (`--lambda-zip STAGE=PATH`), deployed as it is.
    Zip(PathBuf),
    /// A `bootstrap` executable built elsewhere (`--lambda-binary STAGE=PATH`), zipped by kpipe.
    Binary(PathBuf),
    /// A zip in memory.
    ZipBytes(Vec<u8>),
}

/// One function's code, ready to upload.
#[derive(Debug)]
pub(crate) struct Code {
    pub(crate) zip: Vec<u8>,
    pub(crate) sha256: String,
}

impl Code {
    fn from_zip(zip: Vec<u8>) -> Self {
        let sha256 = sha256_base64(&zip);
        Code { zip, sha256 }
    }
}

/// The code of each function: built or read once per [`Aws`], then reused by `plan` and
/// `apply`.
#[derive(Debug, Default)]
pub(crate) struct Artifacts {
    pub(crate) sources: HashMap<String, CodeSource>,
    pub(crate) manifest_path: Option<PathBuf>,
    cache: Mutex<HashMap<String, Arc<Code>>>,
}

impl Artifacts {
    /// The code of stage `stage`, whose function is `lambda`.
    pub(crate) async fn code(
        &self,
        stage: &str,
        lambda: &LambdaSpec,
    ) -> Result<Arc<Code>, ProvisionError> {
        if let Some(code) = self.cached(stage) {
            return Ok(code);
        }
        let source = self
            .sources
            .get(stage)
            .cloned()
            .unwrap_or(CodeSource::Build);
        let resource = format!("the code of lambda function {}", lambda.name);
        let read = |path: &Path| {
            std::fs::read(path).map_err(|e| ProvisionError::Build {
                resource: resource.clone(),
                message: format!("{}: {e}", path.display()),
            })
        };
        let code = match source {
            CodeSource::Zip(path) => Code::from_zip(read(&path)?),
            CodeSource::ZipBytes(zip) => Code::from_zip(zip),
            CodeSource::Binary(path) => Code::from_zip(zip_bootstrap(&read(&path)?, &resource)?),
            CodeSource::Build => {
                let (bin, arch, manifest) =
                    (lambda.bin, lambda.architecture, self.manifest_path.clone());
                let binary =
                    tokio::task::spawn_blocking(move || build(bin, arch, manifest.as_deref()))
                        .await
                        .map_err(|e| ProvisionError::Build {
                            resource: resource.clone(),
                            message: e.to_string(),
                        })?
                        .map_err(|message| ProvisionError::Build {
                            resource: resource.clone(),
                            message,
                        })?;
                Code::from_zip(zip_bootstrap(&read(&binary)?, &resource)?)
            }
        };
        let code = Arc::new(code);
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(stage.to_owned(), Arc::clone(&code));
        Ok(code)
    }

    fn cached(&self, stage: &str) -> Option<Arc<Code>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(stage)
            .cloned()
    }
}

/// The base64 SHA-256 of `bytes`, as Lambda reports `CodeSha256`.
pub fn sha256_base64(bytes: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(bytes))
}

/// A zip holding `binary` as `bootstrap` (executable), the same bytes for the same binary.
pub fn zip_bootstrap(binary: &[u8], resource: &str) -> Result<Vec<u8>, ProvisionError> {
    let fail = |e: zip::result::ZipError| ProvisionError::Build {
        resource: resource.to_owned(),
        message: format!("zipping bootstrap: {e}"),
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o755);
    w.start_file("bootstrap", options).map_err(fail)?;
    std::io::Write::write_all(&mut w, binary).map_err(|e| fail(e.into()))?;
    w.finish().map_err(fail)?;
    Ok(out.into_inner())
}

/// The Rust target cargo-lambda builds for an architecture.
fn target(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "x86_64-unknown-linux-gnu",
        Architecture::Arm64 => "aarch64-unknown-linux-gnu",
    }
}

/// Whether the standard library of `target` is installed (rustup's layout: a `lib` folder
/// under `rustc --print target-libdir`).
fn target_installed(target: &str) -> bool {
    std::process::Command::new("rustc")
        .args(["--print", "target-libdir", "--target", target])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .is_some_and(|dir| Path::new(dir.trim()).is_dir())
}

/// The Rust target of this machine (`rustc -vV`'s `host:`).
fn host() -> Option<String> {
    let out = std::process::Command::new("rustc")
        .arg("-vV")
        .output()
        .ok()?;
    String::from_utf8(out.stdout)
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
}

/// Builds bin target `bin` with `cargo lambda build --release` for `arch` (cargo's output goes
/// to stderr as it builds) and returns the path of its `bootstrap`.
fn build(bin: &str, arch: Architecture, manifest: Option<&Path>) -> Result<PathBuf, String> {
    let target = target(arch);
    if !target_installed(target) {
        return Err(format!(
            "the Rust target {target} is not installed; install it with \
             `rustup target add {target}` (or declare `architecture: {}`, or pass \
             --lambda-zip / --lambda-binary with code built elsewhere)",
            match arch {
                Architecture::Arm64 => "x86_64",
                Architecture::X86_64 => "arm64",
            }
        ));
    }
    let lambda_dir = std::env::temp_dir().join(format!("kpipe-lambda-{}", std::process::id()));
    let mut cmd = std::process::Command::new("cargo");
    cmd.args([
        "lambda",
        "build",
        "--release",
        "--bin",
        bin,
        "--target",
        target,
    ])
    .arg("--lambda-dir")
    .arg(&lambda_dir);
    if host().as_deref() == Some(target) {
        // For this machine's own target plain cargo does; cross-compiling goes through zig,
        // cargo-lambda's default (`pip install ziglang`).
        cmd.args(["--compiler", "cargo"]);
    }
    if let Some(m) = manifest {
        cmd.arg("--manifest-path").arg(m);
    }
    eprintln!("building bin `{bin}` for {target} with cargo lambda");
    let status = cmd.status().map_err(|e| {
        format!(
            "could not run `cargo lambda` ({e}); install it with `pip install cargo-lambda` \
             (https://www.cargo-lambda.info/guide/installation.html)"
        )
    })?;
    if !status.success() {
        return Err(format!(
            "`cargo lambda build --release --bin {bin} --target {target}` failed ({status}); \
             the stage's `lambda: {{ bin }}` must name a bin target of the crate that serves it \
             with `kpipe_runtime::lambda_main!`"
        ));
    }
    let bootstrap = lambda_dir.join(bin).join("bootstrap");
    if bootstrap.is_file() {
        Ok(bootstrap)
    } else {
        Err(format!(
            "cargo lambda built `{bin}` but left no {}",
            bootstrap.display()
        ))
    }
}

/// The architecture's name in the Lambda API.
pub(crate) fn architecture_name(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "x86_64",
        Architecture::Arm64 => "arm64",
    }
}

impl<P: Pipeline> Aws<P> {
    /// Every function as the declaration wants it, with its code's hash (building it if need
    /// be).
    pub(crate) async fn desired_functions(
        &self,
        env: &Env,
    ) -> Result<Vec<FunctionState>, ProvisionError> {
        let spec = self.spec();
        let mut out = Vec::new();
        for (stage, lambda) in crate::desired::functions(spec) {
            let code = self.artifacts.code(stage, lambda).await?;
            let role = env
                .value(&format!(
                    "{}.Arn",
                    crate::cloudformation::logical_id(stage, "FunctionRole")
                ))
                .unwrap_or_default()
                .to_owned();
            out.push(FunctionState {
                stage: stage.to_owned(),
                name: lambda.name.to_owned(),
                memory_mib: lambda.memory_mib,
                timeout_secs: lambda.timeout_secs,
                architecture: architecture_name(lambda.architecture).to_owned(),
                role,
                runtime: RUNTIME.to_owned(),
                description: crate::desired::function_description(spec, stage),
                code_sha256: code.sha256.clone(),
            });
        }
        Ok(out)
    }

    /// A function as AWS describes it, and its tags; `None` when there is none.
    pub(crate) async fn current_function(
        &self,
        desired: &FunctionState,
    ) -> Result<Option<(FunctionState, HashMap<String, String>)>, ProvisionError> {
        let out = match self
            .lambda
            .get_function()
            .function_name(&desired.name)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                return Ok(None);
            }
            Err(e) => {
                return Err(call_err(
                    &format!("lambda function {}", desired.name),
                    "describe",
                    e,
                ));
            }
        };
        let Some(c) = out.configuration() else {
            return Ok(None);
        };
        let state = FunctionState {
            stage: desired.stage.clone(),
            name: desired.name.clone(),
            memory_mib: c.memory_size().unwrap_or(128) as u32,
            timeout_secs: c.timeout().unwrap_or(3) as u32,
            architecture: c
                .architectures()
                .first()
                .map_or("x86_64", |a| a.as_str())
                .to_owned(),
            role: c.role().unwrap_or_default().to_owned(),
            runtime: c.runtime().map_or("", |r| r.as_str()).to_owned(),
            description: c.description().unwrap_or_default().to_owned(),
            code_sha256: c.code_sha256().unwrap_or_default().to_owned(),
        };
        Ok(Some((state, out.tags().cloned().unwrap_or_default())))
    }

    /// Creates the function with its code and tags, then waits until it is Active.
    pub(crate) async fn create_function(
        &self,
        f: &FunctionState,
        tags: &[(String, String)],
    ) -> Result<(), ProvisionError> {
        let resource = format!("lambda function {}", f.name);
        let code = self.code_of(f).await?;
        // A role made a moment ago may not be assumable by Lambda yet (IAM is eventually
        // consistent): Lambda then answers InvalidParameterValue, worth a few retries.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = self
                .lambda
                .create_function()
                .function_name(&f.name)
                .runtime(lm::Runtime::from(f.runtime.as_str()))
                .handler("bootstrap")
                .role(&f.role)
                .memory_size(f.memory_mib as i32)
                .timeout(f.timeout_secs as i32)
                .architectures(lm::Architecture::from(f.architecture.as_str()))
                .description(&f.description)
                .set_tags(Some(tags.iter().cloned().collect()))
                .code(
                    lm::FunctionCode::builder()
                        .zip_file(aws_sdk_lambda::primitives::Blob::new(code.zip.clone()))
                        .build(),
                )
                .send()
                .await;
            match sent {
                Ok(_) => break,
                Err(e)
                    if attempt < 8
                        && e.as_service_error()
                            .is_some_and(|s| s.is_invalid_parameter_value_exception()) =>
                {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                }
                Err(e) => return Err(call_err(&resource, "create", e)),
            }
        }
        self.wait_function_ready(&f.name).await
    }

    /// Uploads the function's code (and architecture), then waits for the update.
    pub(crate) async fn update_function_code(
        &self,
        f: &FunctionState,
    ) -> Result<(), ProvisionError> {
        let code = self.code_of(f).await?;
        self.wait_function_ready(&f.name).await?;
        self.lambda
            .update_function_code()
            .function_name(&f.name)
            .zip_file(aws_sdk_lambda::primitives::Blob::new(code.zip.clone()))
            .architectures(lm::Architecture::from(f.architecture.as_str()))
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("lambda function {}", f.name),
                    "update the code of",
                    e,
                )
            })?;
        self.wait_function_ready(&f.name).await
    }

    /// Changes the function's configuration, then waits for the update.
    pub(crate) async fn update_function_config(
        &self,
        f: &FunctionState,
    ) -> Result<(), ProvisionError> {
        self.wait_function_ready(&f.name).await?;
        self.lambda
            .update_function_configuration()
            .function_name(&f.name)
            .runtime(lm::Runtime::from(f.runtime.as_str()))
            .handler("bootstrap")
            .role(&f.role)
            .memory_size(f.memory_mib as i32)
            .timeout(f.timeout_secs as i32)
            .description(&f.description)
            .send()
            .await
            .map_err(|e| {
                call_err(
                    &format!("lambda function {}", f.name),
                    "update the configuration of",
                    e,
                )
            })?;
        self.wait_function_ready(&f.name).await
    }

    async fn code_of(&self, f: &FunctionState) -> Result<Arc<Code>, ProvisionError> {
        let lambda = crate::desired::functions(self.spec())
            .into_iter()
            .find(|(stage, _)| *stage == f.stage)
            .map(|(_, l)| l)
            .ok_or_else(|| ProvisionError::Build {
                resource: format!("lambda function {}", f.name),
                message: format!("no stage `{}` in the pipeline", f.stage),
            })?;
        self.artifacts.code(&f.stage, lambda).await
    }

    /// Waits until the function's `State` is Active and its `LastUpdateStatus` Successful
    /// ("Lambda function states",
    /// <https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html>).
    pub(crate) async fn wait_function_ready(&self, name: &str) -> Result<(), ProvisionError> {
        let resource = format!("lambda function {name}");
        self.wait_until(&resource, || async {
            let c = self
                .lambda
                .get_function_configuration()
                .function_name(name)
                .send()
                .await
                .map_err(|e| call_err(&resource, "describe", e))?;
            let state = c.state().map_or("Active", |s| s.as_str()).to_owned();
            let update = c
                .last_update_status()
                .map_or("Successful", |s| s.as_str())
                .to_owned();
            Ok(match (state.as_str(), update.as_str()) {
                ("Active", "Successful") => super::wait::Wait::Done,
                ("Failed", _) | (_, "Failed") => super::wait::Wait::Failed(format!(
                    "{state}/{update}: {}",
                    c.state_reason()
                        .or(c.last_update_status_reason())
                        .unwrap_or_default()
                )),
                _ => super::wait::Wait::Pending(format!("{state}/{update}")),
            })
        })
        .await
    }

    /// Deletes a function; false when it was already gone.
    pub(crate) async fn delete_function(&self, name: &str) -> Result<bool, ProvisionError> {
        match self
            .lambda
            .delete_function()
            .function_name(name)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(call_err(&format!("lambda function {name}"), "delete", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_binary_makes_the_same_zip() {
        let a = zip_bootstrap(b"\x7fELF binary", "t").unwrap();
        let b = zip_bootstrap(b"\x7fELF binary", "t").unwrap();
        assert_eq!(sha256_base64(&a), sha256_base64(&b));
        let c = zip_bootstrap(b"\x7fELF other", "t").unwrap();
        assert_ne!(sha256_base64(&a), sha256_base64(&c));
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(a)).unwrap();
        let entry = archive.by_name("bootstrap").unwrap();
        assert_eq!(entry.unix_mode().map(|m| m & 0o777), Some(0o755));
    }

    #[test]
    fn a_missing_target_names_the_command_that_installs_it() {
        // Where the target is installed this would build; the message is what matters.
        if !target_installed("aarch64-unknown-linux-gnu") {
            let message = build("x", Architecture::Arm64, None).unwrap_err();
            assert!(
                message.contains("rustup target add aarch64-unknown-linux-gnu"),
                "{message}"
            );
        }
    }
}
