//! Waiting for a resource to become ready (or gone), polling with backoff.

use super::{Aws, ProvisionError};
use crate::pipeline::Pipeline;
use std::time::Duration;

/// How long to wait for a resource to become ACTIVE or gone.
const WAIT_LIMIT: Duration = Duration::from_secs(600);

/// What one poll found.
pub(crate) enum Wait {
    Done,
    Pending(String),
    Failed(String),
}

impl Wait {
    /// `Done` at `ready`, `Failed` at one of `failed`, `Pending` otherwise.
    pub(crate) fn status(status: &str, ready: &str, failed: &[&str]) -> Wait {
        if status == ready {
            Wait::Done
        } else if failed.contains(&status) {
            Wait::Failed(status.to_owned())
        } else {
            Wait::Pending(status.to_owned())
        }
    }
}

impl<P: Pipeline> Aws<P> {
    /// Polls with backoff until `check` is done or fails, at most [`WAIT_LIMIT`].
    pub(crate) async fn wait_until<F, Fut>(
        &self,
        resource: &str,
        check: F,
    ) -> Result<(), ProvisionError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Wait, ProvisionError>>,
    {
        let start = tokio::time::Instant::now();
        let mut delay = self.poll;
        loop {
            match check().await? {
                Wait::Done => return Ok(()),
                Wait::Failed(status) => {
                    return Err(ProvisionError::NotReady {
                        resource: resource.to_owned(),
                        status,
                    });
                }
                Wait::Pending(status) if start.elapsed() > WAIT_LIMIT => {
                    return Err(ProvisionError::NotReady {
                        resource: resource.to_owned(),
                        status,
                    });
                }
                Wait::Pending(_) => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Waits until stream `name` is ACTIVE.
    pub(crate) async fn wait_stream_active(&self, name: &str) -> Result<(), ProvisionError> {
        self.wait_until(&format!("kinesis stream {name}"), || async {
            Ok(match self.current_stream(name).await? {
                Some(c) => Wait::status(&c.status, "ACTIVE", &[]),
                None => Wait::Pending("missing".into()),
            })
        })
        .await
    }
}
