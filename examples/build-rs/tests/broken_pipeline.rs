//! A deliberately broken `.kpipe` fails `cargo build` with rustc-style diagnostics: a crate
//! with this example's build script and a broken pipeline is built by cargo, and its error
//! output is checked for file:line:col, the source line, the underline and the message.

use std::path::{Path, PathBuf};
use std::process::Command;

const BROKEN: &str = r#"pub pipeline Broken {
    stream readings: crate::Reading {
        capacity: provisioned(shards: 2),
        retention: 12h,
        partition_key: sensor_id,
    }
    s3 lake: crate::Reading { bucket: "acme-lake", compresion: gzip }
    delivery to_lake: readings -> lake;
}
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_broken_kpipe_fails_the_build_with_rustc_style_errors() {
    let root = workspace().canonicalize().unwrap();
    let krate = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("broken-kpipe-crate");
    let _ = std::fs::remove_dir_all(&krate);
    std::fs::create_dir_all(krate.join("pipelines")).unwrap();
    std::fs::create_dir_all(krate.join("src")).unwrap();
    // Its own workspace (an empty [workspace] table), depending on kpipe-codegen by path, with
    // this workspace's lock file so the build is offline and uses the same versions.
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"broken-kpipe\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [build-dependencies]\nkpipe-codegen = {{ path = {:?}, features = [\"build\"] }}\n\n\
             [workspace]\n",
            root.join("kpipe-codegen")
        ),
    )
    .unwrap();
    std::fs::copy(root.join("Cargo.lock"), krate.join("Cargo.lock")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("build.rs"),
        krate.join("build.rs"),
    )
    .unwrap();
    std::fs::write(krate.join("src/lib.rs"), "").unwrap();
    std::fs::write(krate.join("pipelines/broken.kpipe"), BROKEN).unwrap();

    // A target directory of its own: the one of this test run is locked by `cargo test`.
    let out = Command::new(env!("CARGO"))
        .args(["build", "--offline", "--quiet"])
        .current_dir(&krate)
        .env("CARGO_TARGET_DIR", root.join("target/broken-kpipe"))
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build must fail:\n{stderr}");

    for expected in [
        "error: retention must be between 24h and 8760h, found 12h",
        "┌─ pipelines/broken.kpipe:4:20",
        "4 │         retention: 12h,",
        "  │                    ^^^",
        "= note: Kinesis keeps records 24 hours to 365 days (Kinesis Data Streams, Change the data retention period: https://docs.aws.amazon.com/streams/latest/dev/kinesis-extended-retention.html)",
        "error: unknown key `compresion` in s3 destination `lake`",
        "┌─ pipelines/broken.kpipe:7:52",
        "= help: did you mean `compression`?",
        "error: could not compile pipelines due to 2 previous errors",
    ] {
        assert!(
            stderr.contains(expected),
            "missing `{expected}` in:\n{stderr}"
        );
    }
}
