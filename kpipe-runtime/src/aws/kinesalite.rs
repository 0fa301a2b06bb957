//! A `kinesalite` (npm, a second Kinesis implementation) for tests: started through a small
//! node wrapper bound to 127.0.0.1 on a free port, with no stream-state delays, and stopped on
//! drop. kinesalite has no ON_DEMAND, UpdateShardCount, UpdateStreamMode or ARN addressing,
//! and no Firehose, S3, IAM or STS: tests use it for the Kinesis data path only.
//!
//! The package is looked up in `$KPIPE_KINESALITE_DIR/node_modules`, else
//! `target/kinesalite/node_modules` of the workspace (where `scripts/test` installs it with
//! `npm install kinesalite@3.3.3`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running kinesalite, killed when dropped.
#[derive(Debug)]
pub struct Kinesalite {
    child: Child,
    endpoint: String,
}

const WRAPPER: &str = r#"
const port = parseInt(process.argv[2], 10);
require('kinesalite')({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0 })
  .listen(port, '127.0.0.1', (err) => {
    if (err) { console.error(err); process.exit(1); }
    console.log('listening ' + port);
  });
"#;

fn package_dir() -> PathBuf {
    match std::env::var_os("KPIPE_KINESALITE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/kinesalite"),
    }
}

impl Kinesalite {
    /// Starts kinesalite on a free loopback port and waits until it listens (at most 60 s).
    ///
    /// # Errors
    /// When node or the kinesalite package is missing, or it does not start.
    pub fn start() -> std::io::Result<Kinesalite> {
        let dir = package_dir();
        if !dir.join("node_modules/kinesalite").is_dir() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "kinesalite is not installed in {} (npm install --prefix {} kinesalite@3.3.3; scripts/test does it)",
                    dir.display(),
                    dir.display()
                ),
            ));
        }
        let wrapper = dir.join("kpipe-kinesalite.js");
        std::fs::write(&wrapper, WRAPPER)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut child = Command::new("node")
            .arg(&wrapper)
            .arg(port.to_string())
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("node: {e}")))?;
        // Wait on the condition (the wrapper says it listens), bounded in real time.
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let give_up = Instant::now() + Duration::from_secs(60);
        let mut server = Kinesalite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) if line.starts_with("listening") => return Ok(server),
                Ok(line) => {
                    return Err(std::io::Error::other(format!(
                        "kinesalite did not start: {line}"
                    )));
                }
                Err(_) if Instant::now() > give_up => {
                    return Err(std::io::Error::other("kinesalite did not start in 60 s"));
                }
                Err(_) => {
                    if let Ok(Some(status)) = server.child.try_wait() {
                        return Err(std::io::Error::other(format!(
                            "kinesalite exited with {status}"
                        )));
                    }
                }
            }
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration for this server: its endpoint, the region, test credentials.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        super::moto::local_sdk_config(&self.endpoint, region).await
    }
}

impl Drop for Kinesalite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
