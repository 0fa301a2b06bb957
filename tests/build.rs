//! Compiles `pipelines/*.kpipe` with kpipe-codegen's build.rs frontend, as a user's build
//! script would.

fn main() {
    kpipe_codegen::build::configure()
        .compile(&["pipelines/telemetry.kpipe"])
        .unwrap();
}
