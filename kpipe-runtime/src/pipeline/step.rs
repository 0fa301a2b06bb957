//! The one ready-or-pending type: what calling a user function gives back, sync or async.

use super::BoxFuture;
use std::fmt;

/// A value now (a synchronous function's), or a future of it (an async function's).
/// [`Call`](super::Call), [`Processing`](super::Processing) and
/// [`Consumed`](super::Consumed) are this type for a transform's outcome, a record's
/// processing and a consumer's result.
pub enum Step<T> {
    /// Done synchronously.
    Ready(T),
    /// Waiting on an async function.
    Pending(BoxFuture<T>),
}

impl<T> Step<T> {
    /// Waits for the value.
    pub async fn result(self) -> T {
        match self {
            Step::Ready(v) => v,
            Step::Pending(f) => f.await,
        }
    }
}

/// Shows a ready value (`Ready(Ok(Enriched { .. }))`), so a test's failed `assert!` says what
/// the function returned.
impl<T: fmt::Debug> fmt::Debug for Step<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Ready(v) => f.debug_tuple("Ready").field(v).finish(),
            Step::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}
