//! `synth --assets DIR`: a template that deploys as it is. Each function's zip is built (or
//! taken from `--lambda-zip` / `--lambda-binary`) into `DIR/kpipe/<pipeline>/<stage>-<hash>.zip`,
//! named by its content so that a changed zip is a changed key and CloudFormation updates the
//! function; `DIR/template.json` has the code parameters default to those keys in the asset
//! bucket, and `DIR/assets.json` lists them.

use super::{CodeArgs, fail, usage};
use crate::artifacts::{Artifacts, CodeSource};
use crate::pipeline::Pipeline;
use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

pub(super) fn write<P: Pipeline>(dir: &Path, bucket: &str, code: &CodeArgs) -> ExitCode {
    let mut artifacts = Artifacts::default();
    for (stage, path) in &code.zips {
        artifacts
            .sources
            .insert(stage.clone(), CodeSource::Zip(path.clone()));
    }
    for (stage, path) in &code.binaries {
        artifacts
            .sources
            .insert(stage.clone(), CodeSource::Binary(path.clone()));
    }
    let functions = crate::desired::functions(P::SPEC);
    if let Some(unknown) = artifacts
        .sources
        .keys()
        .find(|s| functions.iter().all(|(id, _)| id != s))
    {
        return usage(&format!(
            "the pipeline has no transform or consumer `{unknown}`"
        ));
    }
    artifacts.manifest_path = code.manifest_path.clone();
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&e),
    };
    let prefix = format!("kpipe/{}", P::SPEC.name.to_lowercase());
    let mut keys = HashMap::new();
    let mut manifest = Vec::new();
    for (stage, lambda) in functions {
        let built = match runtime.block_on(artifacts.code(stage, lambda)) {
            Ok(code) => code,
            Err(e) => return fail(&e),
        };
        let hex: String = {
            use sha2::Digest;
            sha2::Sha256::digest(&built.zip)
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect()
        };
        let key = format!("{prefix}/{stage}-{hex}.zip");
        let path = dir.join(&key);
        if let Err(e) = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::write(&path, &built.zip))
        {
            return fail(&format!("{}: {e}", path.display()));
        }
        manifest.push(serde_json::json!({
            "stage": stage,
            "function": lambda.name,
            "file": key,
            "bucket": bucket,
            "key": key,
            "code_sha256": built.sha256,
            "bytes": built.zip.len(),
        }));
        keys.insert(stage.to_owned(), (bucket.to_owned(), key));
    }
    let template = crate::cloudformation::template_with_code(P::SPEC, &keys);
    let files = [
        ("template.json", serde_json::to_string_pretty(&template)),
        (
            "assets.json",
            serde_json::to_string_pretty(&serde_json::json!({ "assets": manifest })),
        ),
    ];
    for (name, text) in files {
        let text = text.expect("JSON values serialise");
        if let Err(e) = std::fs::write(dir.join(name), text + "\n") {
            return fail(&format!("{}: {e}", dir.join(name).display()));
        }
    }
    println!(
        "wrote {} with {} function zip(s); deploy with:\n  aws s3 mb s3://{bucket}   # once\n  aws s3 sync {}/kpipe s3://{bucket}/kpipe\n  aws cloudformation deploy --stack-name {} --template-file {}/template.json --capabilities CAPABILITY_IAM",
        dir.display(),
        keys.len(),
        dir.display(),
        P::SPEC.name.to_lowercase(),
        dir.display()
    );
    ExitCode::SUCCESS
}
