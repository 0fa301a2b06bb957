//! What users read cites the AWS documentation page (name and URL) or kpipe's own docs, never a
//! file of the developers' notes that users do not have.

use std::path::{Path, PathBuf};

/// The notes file the project's developers keep outside the repository.
const NOTES: &str = concat!("aws", "-facts");

fn text_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the workspace can be listed") {
        let path = entry.expect("a directory entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !name.starts_with('.') && name != "target" && name != "kpipe-data" {
                text_files(&path, out);
            }
        } else if ["rs", "md", "stderr", "snap", "py", "toml", "kpipe", "sh"]
            .iter()
            .any(|ext| name.ends_with(&format!(".{ext}")))
            || path.parent().is_some_and(|p| p.ends_with("scripts"))
        {
            out.push(path);
        }
    }
}

#[test]
fn no_file_cites_the_developers_notes() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root");
    let mut files = Vec::new();
    text_files(root, &mut files);
    assert!(
        files.len() > 50,
        "found only {} files under {}",
        files.len(),
        root.display()
    );
    let offenders: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).ok()?;
            let lines: Vec<String> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains(NOTES))
                .map(|(i, _)| format!("{}:{}", f.strip_prefix(root).unwrap_or(f).display(), i + 1))
                .collect();
            (!lines.is_empty()).then(|| lines.join("\n"))
        })
        .collect();
    assert!(
        offenders.is_empty(),
        "cite the AWS page (name and URL) instead of {NOTES}.md:\n{}",
        offenders.join("\n")
    );
}
