//! A `moto_server` for tests: started on a free loopback port, stopped on drop.
//!
//! moto (PyPI `moto[server]`) answers the AWS APIs kpipe provisions with (Kinesis, Firehose,
//! S3, IAM, STS), so provisioning can be tested without an AWS account:
//!
//! ```no_run
//! # async fn t() {
//! let moto = kpipe_runtime::aws::moto::MotoServer::start().expect("moto_server is installed");
//! let config = moto.sdk_config("us-west-2").await;
//! // Telemetry::aws(&config).apply(false).await ...
//! # }
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server`, killed when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    endpoint: String,
}

impl MotoServer {
    /// Starts `moto_server -H 127.0.0.1 -p <free port>` and waits until it answers (at most
    /// 60 s).
    ///
    /// # Errors
    /// When `moto_server` cannot be started or does not answer.
    pub fn start() -> std::io::Result<MotoServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("moto_server: {e} (pip install 'moto[server]')"),
                )
            })?;
        let mut server = MotoServer {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        // Wait on the condition (the API answers), bounded in real time.
        let give_up = Instant::now() + Duration::from_secs(60);
        while !answers(port) {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(std::io::Error::other(format!(
                    "moto_server exited with {status}"
                )));
            }
            if Instant::now() > give_up {
                return Err(std::io::Error::other(format!(
                    "moto_server did not answer on port {port}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK configuration for this server: its endpoint, the region, test credentials.
    pub async fn sdk_config(&self, region: &str) -> aws_config::SdkConfig {
        local_sdk_config(&self.endpoint, region).await
    }
}

fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    if s.write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.ends_with(b"200")
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An SDK configuration for a local endpoint (moto, kinesalite): the endpoint, the region, and
/// the static test credentials local emulators accept.
pub async fn local_sdk_config(endpoint: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_kinesis::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "kpipe-local",
        ))
        .load()
        .await
}
