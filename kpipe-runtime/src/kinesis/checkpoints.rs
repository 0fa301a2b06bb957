//! Checkpoints: per shard, the sequence number of the last record delivered, kept so that
//! a restarted reader resumes after what was delivered (at least once, never lost).

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Checkpoints: per shard id, the sequence number of the last record delivered.
pub type Checkpoints = BTreeMap<String, String>;

/// Where checkpoints are kept. A file by default; a shared store (DynamoDB, say) for several
/// workers implements the same two calls.
pub trait CheckpointStore {
    /// The saved checkpoints (empty when there are none yet).
    ///
    /// # Errors
    /// When the store cannot be read.
    fn load(&self) -> std::io::Result<Checkpoints>;

    /// Saves the checkpoints, replacing the previous ones, and forgets the progress of the
    /// run they conclude.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn save(&self, checkpoints: &Checkpoints) -> std::io::Result<()>;

    /// How far an unfinished run had read past the checkpoints (empty when the last run
    /// finished): records up to there are read again, and counted as re-read.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn load_progress(&self) -> std::io::Result<Checkpoints> {
        Ok(Checkpoints::new())
    }

    /// Records how far this run has read (before its records are delivered).
    ///
    /// # Errors
    /// When the store cannot be written.
    fn save_progress(&self, _progress: &Checkpoints) -> std::io::Result<()> {
        Ok(())
    }
}

/// Checkpoints in a JSON file, written atomically (a temporary file renamed over it); the
/// progress of a running drain in `<file>.progress` beside it.
#[derive(Clone, Debug)]
pub struct FileCheckpoints {
    path: PathBuf,
}

impl FileCheckpoints {
    /// Checkpoints kept at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileCheckpoints { path: path.into() }
    }

    /// Where a running drain records how far it has read.
    pub fn progress_path(&self) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(".progress");
        PathBuf::from(name)
    }

    /// Reads a checkpoint file. A missing file is no checkpoints; an empty or unreadable one
    /// is an error naming it, never a silent start from the beginning (kpipe writes these
    /// files whole, so such a file was damaged by something else).
    fn read(path: &std::path::Path) -> std::io::Result<Checkpoints> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "the checkpoint file {} is empty; restore it, or delete it to read from \
                     the start position again",
                    path.display()
                ),
            )),
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the checkpoint file {} is not valid ({e}); restore it, or delete it \
                         to read from the start position again",
                        path.display()
                    ),
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoints::new()),
            Err(e) => Err(e),
        }
    }

    fn write(path: &std::path::Path, checkpoints: &Checkpoints) -> std::io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_vec_pretty(checkpoints).map_err(std::io::Error::other)?;
        // Written whole, on disk, then renamed into place and the rename made durable: a
        // crash leaves the old checkpoints or the new ones, never a torn file.
        let mut file = std::fs::File::create(&tmp)?;
        std::io::Write::write_all(&mut file, &text)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    }
}

/// Makes a rename or removal in `path`'s folder durable (on Unix; elsewhere a folder cannot
/// be opened to be synced).
fn sync_dir(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => std::path::Path::new("."),
        };
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

impl CheckpointStore for FileCheckpoints {
    fn load(&self) -> std::io::Result<Checkpoints> {
        Self::read(&self.path)
    }

    fn save(&self, checkpoints: &Checkpoints) -> std::io::Result<()> {
        Self::write(&self.path, checkpoints)?;
        match std::fs::remove_file(self.progress_path()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn load_progress(&self) -> std::io::Result<Checkpoints> {
        Self::read(&self.progress_path())
    }

    fn save_progress(&self, progress: &Checkpoints) -> std::io::Result<()> {
        Self::write(&self.progress_path(), progress)
    }
}

/// Kinesis sequence numbers are decimal strings of up to 128 digits: compare them as numbers.
pub(crate) fn sequence_le(a: &str, b: &str) -> bool {
    (a.len(), a) <= (b.len(), b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_le("99", "100"));
        assert!(sequence_le("100", "100"));
        assert!(!sequence_le("101", "100"));
        assert!(!sequence_le("1000", "999"));
    }

    #[test]
    fn file_checkpoints_round_trip_and_start_empty() {
        let dir = std::env::temp_dir().join(format!("kpipe-ckpt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = FileCheckpoints::new(dir.join("c.json"));
        assert!(store.load().unwrap().is_empty());
        let mut c = Checkpoints::new();
        c.insert("shardId-000000000000".into(), "4959".into());
        store.save_progress(&c).unwrap();
        assert_eq!(store.load_progress().unwrap(), c);
        assert!(
            store.load().unwrap().is_empty(),
            "progress is not a checkpoint"
        );
        store.save(&c).unwrap();
        assert_eq!(store.load().unwrap(), c);
        assert!(
            store.load_progress().unwrap().is_empty(),
            "a saved checkpoint ends the run"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_empty_or_corrupt_checkpoint_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        let store = FileCheckpoints::new(&path);
        for (bytes, says) in [
            (&b""[..], "is empty"),
            (b"{\"shardId-0\": 4", "is not valid"),
        ] {
            std::fs::write(&path, bytes).unwrap();
            let e = store.load().unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
            let message = e.to_string();
            assert!(message.contains(says), "{message}");
            assert!(message.contains(&path.display().to_string()), "{message}");
        }
    }
}
