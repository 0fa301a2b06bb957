//! Engine time: intervals run on tokio's clock (so tests drive them with a paused clock), and
//! wall-clock timestamps (arrival times, S3 keys) are derived from the same clock.

use std::pin::Pin;
use tokio::time::{Instant, Sleep};

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

/// The timer of a loop that waits for its next message or its next deadline, whichever comes
/// first, and whose deadline moves now and then: one timer for the whole loop, reset only when
/// the deadline moves. A timer made per turn registers with the runtime's timer wheel and
/// leaves it again on every message, taking the wheel's lock each time (and waking the thread
/// that drives it).
pub(crate) struct Alarm {
    sleep: Pin<Box<Sleep>>,
    at: Option<Instant>,
}

impl Alarm {
    /// An alarm with no deadline.
    pub(crate) fn new() -> Self {
        Alarm {
            sleep: Box::pin(tokio::time::sleep_until(Instant::now())),
            at: None,
        }
    }

    /// Sets the next deadline, if there is one; true then. With none, the timer stays as it
    /// was: a caller waits on [`Alarm::rung`] only while there is a deadline (a deadline that
    /// went away and comes back unchanged finds the timer already set, or already rung).
    pub(crate) fn set(&mut self, deadline: Option<Instant>) -> bool {
        if let Some(d) = deadline
            && self.at != Some(d)
        {
            self.sleep.as_mut().reset(d);
            self.at = Some(d);
        }
        deadline.is_some()
    }

    /// Resolves once the last deadline set has passed.
    pub(crate) fn rung(&mut self) -> Pin<&mut Sleep> {
        self.sleep.as_mut()
    }
}
