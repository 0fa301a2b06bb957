//! What a transform function returns for one record.

use std::fmt::Display;

/// The result of transforming one record, mirroring Firehose's three record results
/// (`Ok`, `Dropped`, `ProcessingFailed`).
///
/// A transform function may also return `Result<U, E: Display>` (an `Err` is
/// `ProcessingFailed` with the error's text) or `Option<U>` (`None` is `Dropped`).
///
/// ```
/// use kpipe_runtime::Outcome;
///
/// fn fahrenheit(celsius: f64) -> Outcome<f64> {
///     if celsius.is_nan() {
///         return Outcome::failed("reading is NaN");
///     }
///     Outcome::Ok(celsius * 9.0 / 5.0 + 32.0)
/// }
/// assert_eq!(fahrenheit(100.0), Outcome::Ok(212.0));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub enum Outcome<U> {
    /// The record was transformed into this output (`"Ok"`).
    Ok(U),
    /// The record is intentionally discarded; it counts as success (`"Dropped"`).
    Dropped,
    /// The record could not be processed; it goes to the error prefix as
    /// `processing-failed` with this message (`"ProcessingFailed"`).
    Failed(String),
}

impl<U> Outcome<U> {
    /// A failed outcome with a message.
    pub fn failed(message: impl Display) -> Self {
        Outcome::Failed(message.to_string())
    }

    /// Maps the output value.
    pub fn map<V>(self, f: impl FnOnce(U) -> V) -> Outcome<V> {
        match self {
            Outcome::Ok(u) => Outcome::Ok(f(u)),
            Outcome::Dropped => Outcome::Dropped,
            Outcome::Failed(m) => Outcome::Failed(m),
        }
    }

    /// Firehose's name for this result: `"Ok"`, `"Dropped"` or `"ProcessingFailed"`
    /// (Amazon Data Firehose, Data transformation and status model: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>).
    pub fn result_name(&self) -> &'static str {
        match self {
            Outcome::Ok(_) => "Ok",
            Outcome::Dropped => "Dropped",
            Outcome::Failed(_) => "ProcessingFailed",
        }
    }
}

/// Types a transform function may return: [`Outcome<U>`], `Result<U, E: Display>` and
/// `Option<U>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a transform result for output `{U}`",
    label = "this function's return type",
    note = "a transform returns `kpipe_runtime::Outcome<{U}>`, `Result<{U}, E>` with `E: Display`, or `Option<{U}>`"
)]
pub trait IntoOutcome<U> {
    /// Converts into an [`Outcome`].
    fn into_outcome(self) -> Outcome<U>;
}

impl<U> IntoOutcome<U> for Outcome<U> {
    fn into_outcome(self) -> Outcome<U> {
        self
    }
}

impl<U, E: Display> IntoOutcome<U> for Result<U, E> {
    fn into_outcome(self) -> Outcome<U> {
        match self {
            Ok(u) => Outcome::Ok(u),
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

impl<U> IntoOutcome<U> for Option<U> {
    fn into_outcome(self) -> Outcome<U> {
        match self {
            Some(u) => Outcome::Ok(u),
            None => Outcome::Dropped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_firehose_results() {
        assert_eq!(Ok::<_, String>(1).into_outcome(), Outcome::Ok(1));
        assert_eq!(
            Err::<i32, _>("bad reading").into_outcome(),
            Outcome::Failed("bad reading".into())
        );
        assert_eq!(None::<i32>.into_outcome(), Outcome::Dropped);
        assert_eq!(Outcome::<i32>::Dropped.result_name(), "Dropped");
        assert_eq!(
            Outcome::<i32>::failed("x").result_name(),
            "ProcessingFailed"
        );
    }
}
