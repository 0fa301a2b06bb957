//! Compiles every `pipelines/*.kpipe` into `$OUT_DIR/<name>.rs`. An error in a `.kpipe` file
//! fails the build with a rustc-style report (file:line:col, the line, an underline).

fn main() -> Result<(), kpipe_codegen::build::BuildError> {
    kpipe_codegen::build::configure().compile_dir("pipelines")
}
