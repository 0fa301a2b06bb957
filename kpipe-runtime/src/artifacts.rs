//! The code of a pipeline's Lambda functions: each transform's and consumer's bin target built
//! with cargo-lambda (or a zip or binary built elsewhere), as a zip ready to upload, with the
//! hash Lambda reports for it. `apply` deploys it; `synth --assets` writes it next to the
//! template.
//!
//! Code is a zip holding one executable, `bootstrap`, for the `provided.al2023` runtime
//! ("Building Lambda functions with Rust",
//! <https://docs.aws.amazon.com/lambda/latest/dg/lambda-rust.html>). kpipe writes the zip
//! itself, with fixed timestamps and permissions, so the same binary always gives the same zip
//! and the same `CodeSha256` (the base64 SHA-256 of the zip, as `GetFunction` reports it):
//! that is how `plan` tells unchanged code from changed code.

use crate::spec::{Architecture, LambdaSpec};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why a function's code could not be had.
#[derive(Debug)]
pub struct CodeError {
    /// `the code of lambda function ...`.
    pub resource: String,
    /// Why, with the command to run when something is missing.
    pub message: String,
}

impl std::fmt::Display for CodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "could not build {}: {}", self.resource, self.message)
    }
}

impl std::error::Error for CodeError {}

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
pub struct Code {
    /// The zip.
    pub zip: Vec<u8>,
    /// Its base64 SHA-256.
    pub sha256: String,
}

impl Code {
    fn from_zip(zip: Vec<u8>) -> Self {
        let sha256 = sha256_base64(&zip);
        Code { zip, sha256 }
    }
}

/// The code of each function: built or read once, then reused (by `plan` and `apply`, or by
/// `synth --assets`).
#[derive(Debug, Default)]
pub struct Artifacts {
    /// Where each stage's code comes from (default [`CodeSource::Build`]).
    pub sources: HashMap<String, CodeSource>,
    /// The `Cargo.toml` cargo-lambda builds from (default: found from the current folder).
    pub manifest_path: Option<PathBuf>,
    cache: Mutex<HashMap<String, Arc<Code>>>,
}

impl Artifacts {
    /// The code of stage `stage`, whose function is `lambda`.
    pub async fn code(&self, stage: &str, lambda: &LambdaSpec) -> Result<Arc<Code>, CodeError> {
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
            std::fs::read(path).map_err(|e| CodeError {
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
                        .map_err(|e| CodeError {
                            resource: resource.clone(),
                            message: e.to_string(),
                        })?
                        .map_err(|message| CodeError {
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
pub fn zip_bootstrap(binary: &[u8], resource: &str) -> Result<Vec<u8>, CodeError> {
    let fail = |e: zip::result::ZipError| CodeError {
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
pub fn architecture_name(arch: Architecture) -> &'static str {
    match arch {
        Architecture::X86_64 => "x86_64",
        Architecture::Arm64 => "arm64",
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
