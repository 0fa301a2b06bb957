//! The build.rs frontend: compiles `.kpipe` files (the body of a `pipeline!` call) into
//! formatted Rust in `OUT_DIR`, with the same parser and generator as the macro.
//!
//! ```no_run
//! // build.rs (with `kpipe-codegen = { version = "=0.1.0", features = ["build"] }` in
//! // [build-dependencies])
//! fn main() {
//!     kpipe_codegen::build::configure()
//!         .compile(&["pipelines/telemetry.kpipe"])
//!         .unwrap(); // build scripts are expected to unwrap: the error is the report
//! }
//! ```
//!
//! and in the crate: `kpipe_runtime::include_pipeline!("telemetry");`
//!
//! Errors render like rustc's, with `file:line:col` and an underline:
//!
//! ```text
//! error: retention must be between 24h and 8760h, found 12h
//!   ┌─ pipelines/telemetry.kpipe:7:24
//!   │
//! 7 │         retention: 12h,
//!   │                    ^^^
//!   │
//!   = note: Kinesis keeps records 24 hours to 365 days (Kinesis Data Streams, Change the data retention period: <https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html>)
//! ```

// The example above is a whole build script; its `fn main` is the point.
#![allow(clippy::needless_doctest_main)]

mod render;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};

/// Starts a build configuration with the defaults: output to `OUT_DIR`, runtime path
/// `::kpipe_runtime`, formatted output, `cargo:rerun-if-changed` lines on.
pub fn configure() -> Builder {
    Builder::default()
}

/// Compiles `.kpipe` files with the default configuration.
///
/// # Errors
/// See [`Builder::compile`].
pub fn compile(inputs: &[impl AsRef<Path>]) -> Result<(), BuildError> {
    configure().compile(inputs)
}

/// Options of the build.rs frontend.
#[derive(Clone, Debug)]
pub struct Builder {
    out_dir: Option<PathBuf>,
    runtime_path: String,
    format: bool,
    emit_rerun_if_changed: bool,
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            out_dir: None,
            runtime_path: "::kpipe_runtime".to_owned(),
            format: true,
            emit_rerun_if_changed: true,
        }
    }
}

impl Builder {
    /// Where generated files go (default: `$OUT_DIR`).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// How generated code names the runtime crate (default: `::kpipe_runtime`), for a
    /// renamed dependency or a re-exporting crate.
    pub fn runtime_path(mut self, path: impl Into<String>) -> Self {
        self.runtime_path = path.into();
        self
    }

    /// Format the output with prettyplease (default: on).
    pub fn format(mut self, enabled: bool) -> Self {
        self.format = enabled;
        self
    }

    /// Print `cargo:rerun-if-changed=<input>` for every input (default: on).
    pub fn emit_rerun_if_changed(mut self, enabled: bool) -> Self {
        self.emit_rerun_if_changed = enabled;
        self
    }

    /// Compiles every `*.kpipe` file directly in `dir`, in name order, and asks cargo to rerun
    /// the build script when a file is added to or removed from `dir`.
    ///
    /// # Errors
    /// As [`Builder::compile`]; [`BuildError::Io`] when `dir` cannot be listed.
    pub fn compile_dir(&self, dir: impl AsRef<Path>) -> Result<(), BuildError> {
        let dir = dir.as_ref();
        let entries = std::fs::read_dir(dir).map_err(|e| BuildError::Io(dir.to_owned(), e))?;
        let mut inputs = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| BuildError::Io(dir.to_owned(), e))?.path();
            if path.extension().is_some_and(|x| x == "kpipe") {
                inputs.push(path);
            }
        }
        inputs.sort();
        if self.emit_rerun_if_changed {
            println!("cargo:rerun-if-changed={}", dir.display());
        }
        self.compile(&inputs)
    }

    /// Parses, validates and writes one `<stem>.rs` per input into the output directory,
    /// rewriting a file only when its content changed. Prints nothing itself except the
    /// `rerun-if-changed` lines.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] with every problem rendered rustc-style when a file has errors
    /// (all inputs are checked before returning); [`BuildError::Io`] when a file cannot be
    /// read or written; [`BuildError::NoOutDir`] when neither `out_dir` nor `OUT_DIR` is set.
    pub fn compile(&self, inputs: &[impl AsRef<Path>]) -> Result<(), BuildError> {
        let out_dir = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(BuildError::NoOutDir)?,
        };
        let mut reports = Vec::new();
        for input in inputs {
            let input = input.as_ref();
            if self.emit_rerun_if_changed {
                println!("cargo:rerun-if-changed={}", input.display());
            }
            let source =
                std::fs::read_to_string(input).map_err(|e| BuildError::Io(input.to_owned(), e))?;
            match self.generate(input, &source) {
                Ok(code) => {
                    let stem = input.file_stem().unwrap_or_default().to_string_lossy();
                    let target = out_dir.join(format!("{stem}.rs"));
                    write::write_if_changed(&target, &code)
                        .map_err(|e| BuildError::Io(target, e))?;
                }
                Err(BuildError::Invalid { report, errors }) => reports.push((report, errors)),
                Err(other) => return Err(other),
            }
        }
        if reports.is_empty() {
            return Ok(());
        }
        let errors = reports.iter().map(|r| r.1).sum();
        let report = reports
            .into_iter()
            .map(|r| r.0)
            .collect::<Vec<_>>()
            .join("\n");
        Err(BuildError::Invalid { report, errors })
    }

    /// The same as [`Builder::compile`] for one source, without touching the filesystem:
    /// source in, Rust out (with the `@generated` header). `path` is used in messages.
    ///
    /// # Errors
    /// [`BuildError::Invalid`] when the source has errors.
    pub fn generate(&self, path: &Path, source: &str) -> Result<String, BuildError> {
        let invalid = |report: String, errors: usize| BuildError::Invalid { report, errors };
        let tokens: proc_macro2::TokenStream = match source.parse() {
            Ok(t) => t,
            Err(e) => {
                let mut d = crate::Diagnostics::default();
                d.error(e.span(), format!("cannot tokenize: {e}"));
                return Err(invalid(render::render(&d, path, source), 1));
            }
        };
        let rt: proc_macro2::TokenStream = self.runtime_path.parse().map_err(|_| {
            invalid(
                format!(
                    "error: runtime path `{}` is not a Rust path",
                    self.runtime_path
                ),
                1,
            )
        })?;
        let (out, diags) = crate::expand(&rt, tokens);
        if !diags.is_empty() {
            return Err(invalid(render::render(&diags, path, source), diags.len()));
        }
        let body = if self.format {
            let file: syn::File = syn::parse2(out).map_err(|e| {
                invalid(
                    format!("error: kpipe-codegen produced unparsable code: {e}"),
                    1,
                )
            })?;
            prettyplease::unparse(&file)
        } else {
            out.to_string()
        };
        Ok(format!(
            "// @generated by kpipe-codegen from {}. Do not edit.\n\n{body}",
            path.display()
        ))
    }
}

/// Why a build failed.
///
/// `Debug` prints the same rustc-style report as `Display`, so a build script's `.unwrap()`,
/// `.expect(..)` or `fn main() -> Result<(), BuildError>` shows readable diagnostics.
#[non_exhaustive]
pub enum BuildError {
    /// The sources have errors; `report` is every diagnostic rendered rustc-style.
    Invalid {
        /// The rendered diagnostics.
        report: String,
        /// How many errors.
        errors: usize,
    },
    /// A file could not be read or written.
    Io(PathBuf, std::io::Error),
    /// Neither `Builder::out_dir` nor the `OUT_DIR` environment variable is set.
    NoOutDir,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Invalid { report, errors } => {
                let s = if *errors == 1 { "" } else { "s" };
                write!(
                    f,
                    "{report}\nerror: could not compile pipelines due to {errors} previous error{s}"
                )
            }
            BuildError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            BuildError::NoOutDir => {
                f.write_str("OUT_DIR is not set; call `out_dir(..)` outside of build.rs")
            }
        }
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\n{self}")
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Io(_, e) => Some(e),
            _ => None,
        }
    }
}
