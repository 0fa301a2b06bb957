//! Engine time: intervals run on tokio's clock (so tests drive them with a paused clock), and
//! wall-clock timestamps (arrival times, S3 keys) are derived from the same clock.

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, advancing with tokio's clock from a chosen start.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    base_ms: i64,
    base: Instant,
}

impl Clock {
    /// A clock that reads `start_ms` now and advances with tokio's time.
    pub fn starting_at(start_ms: i64) -> Self {
        Clock {
            base_ms: start_ms,
            base: Instant::now(),
        }
    }

    /// A clock that starts at the system's wall-clock time.
    pub fn system() -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Clock::starting_at(now)
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.base_ms + self.base.elapsed().as_millis() as i64
    }

    /// The tokio instant of a wall-clock time read from this clock.
    pub fn instant_of(&self, ms: i64) -> Instant {
        self.base + std::time::Duration::from_millis((ms - self.base_ms).max(0) as u64)
    }
}
