//! The staging files of the local file system store.
//!
//! object_store's `LocalFileSystem` writes an object to `<name>#<n>` and renames it into
//! place once complete. A run killed in between leaves the staging file behind; object_store
//! lists past it, but a person or a tool reading the output folder would see it. The engine
//! removes such leftovers when it starts, so after a restart only complete objects are
//! visible. (kpipe's own object names never end in `#<digits>`.)

use std::path::Path;

/// Whether a file name is a staging name, `<name>#<digits>`.
fn is_staging(name: &str) -> bool {
    match name.rsplit_once('#') {
        Some((base, n)) => {
            !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Removes the staging files under `root`, returning how many there were.
pub(crate) fn remove_leftovers(root: &Path) -> std::io::Result<u64> {
    let mut removed = 0;
    for entry in walkdir::WalkDir::new(root).follow_links(false) {
        let entry = entry.map_err(std::io::Error::other)?;
        if !entry.file_type().is_file() {
            continue;
        }
        if entry.file_name().to_str().is_some_and(is_staging) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    if removed > 0 {
        tracing::info!(
            files = removed,
            folder = %root.display(),
            "removed the staging files of an interrupted run"
        );
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_only_staging_files() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("bucket/2026/12/01/21");
        std::fs::create_dir_all(&sub).unwrap();
        let keep = ["lake-1-2026-12-01-21-00-00-u.gz", "a#b", "#1", "x#"];
        let drop = ["lake-1-2026-12-01-21-00-00-u.gz#1", "y#42"];
        for name in keep.iter().chain(&drop) {
            std::fs::write(sub.join(name), b"x").unwrap();
        }
        assert_eq!(remove_leftovers(dir.path()).unwrap(), 2);
        for name in keep {
            assert!(sub.join(name).exists(), "{name}");
        }
        for name in drop {
            assert!(!sub.join(name).exists(), "{name}");
        }
    }
}
