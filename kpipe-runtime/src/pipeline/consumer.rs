//! Consumers: a user function called on every record of a stream (`consumer` declarations),
//! run by Lambda through an event source mapping.
//!
//! A consumer function takes the stream's record by value and returns `()` (it cannot fail)
//! or `Result<(), E>` with `E: Display`; it may be `async`:
//!
//! ```
//! # struct Reading { celsius: f64 }
//! fn alert_on_freeze(r: Reading) -> Result<(), String> {
//!     if r.celsius < 0.0 {
//!         // page someone; an `Err` makes Lambda retry from this record
//!     }
//!     Ok(())
//! }
//! ```

use super::Codec;
use super::guard::{CatchUnwind, guard};
use crate::spec::ConsumerSpec;
use std::fmt::{self, Display};
use std::future::Future;
use std::sync::Arc;

/// What a consumer function returns: `()` or `Result<(), E: Display>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a consumer result",
    label = "this function's return type",
    note = "a consumer returns `()` or `Result<(), E>` with `E: Display`"
)]
pub trait IntoConsumed {
    /// `Err(message)` when the record failed.
    fn into_consumed(self) -> Result<(), String>;
}

impl IntoConsumed for () {
    fn into_consumed(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Display> IntoConsumed for Result<(), E> {
    fn into_consumed(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// The result of calling a consumer function: now (sync) or a future of it (async).
pub type Consumed = super::Step<Result<(), String>>;

/// A type-erased consumer function.
pub type DynConsumeFn<I> = Arc<dyn Fn(I) -> Consumed + Send + Sync>;

/// Functions usable as a consumer of records `I`: `fn(I) -> R` or `async fn(I) -> R` with
/// `R: IntoConsumed`. `Kind` ([`SyncFn`](super::SyncFn) or [`AsyncFn`](super::AsyncFn)) is
/// inferred.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot consume the records of this stream, which are `{I}`",
    label = "expected a function taking `{I}` and returning `()`, or `Result<(), E>` with `E: Display`",
    note = "a consumer function takes the stream's record by value; it may be `async`"
)]
pub trait ConsumeFn<I, Kind>: Send + Sync + 'static {
    /// Erases the function.
    fn into_dyn(self) -> DynConsumeFn<I>;
}

impl<I, F, R> ConsumeFn<I, super::SyncFn> for F
where
    F: Fn(I) -> R + Send + Sync + 'static,
    R: IntoConsumed,
{
    fn into_dyn(self) -> DynConsumeFn<I> {
        Arc::new(move |i| Consumed::Ready(self(i).into_consumed()))
    }
}

impl<I, F, Fut> ConsumeFn<I, super::AsyncFn> for F
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoConsumed,
{
    fn into_dyn(self) -> DynConsumeFn<I> {
        Arc::new(move |i| {
            let fut = self(i);
            Consumed::Pending(Box::pin(async move { fut.await.into_consumed() }))
        })
    }
}

/// A consumer of a stream's records `I`: the user function with its spec and codec.
pub struct ConsumerDef<I> {
    pub(crate) spec: &'static ConsumerSpec,
    pub(crate) codec: Codec<I>,
    pub(crate) function: DynConsumeFn<I>,
    /// With `tumbling_window`: the aggregate, which takes the records instead of `function`.
    pub(crate) window: Option<Arc<dyn super::window::Windowed>>,
}

impl<I> Clone for ConsumerDef<I> {
    fn clone(&self) -> Self {
        ConsumerDef {
            spec: self.spec,
            codec: self.codec,
            function: Arc::clone(&self.function),
            window: self.window.clone(),
        }
    }
}

impl<I> fmt::Debug for ConsumerDef<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConsumerDef")
            .field("spec", self.spec)
            .finish()
    }
}

impl<I> ConsumerDef<I> {
    /// The consumer's spec.
    pub fn spec(&self) -> &'static ConsumerSpec {
        self.spec
    }

    /// Calls the user function on one record.
    pub fn call(&self, record: I) -> Consumed {
        (self.function)(record)
    }
}

/// A consumer with its record type erased: record bytes in, `Err(reason)` when the record
/// does not decode, the function fails, or the function panics.
#[derive(Clone)]
pub struct AnyConsumer {
    spec: &'static ConsumerSpec,
    #[allow(clippy::type_complexity)]
    consume: Arc<dyn Fn(&[u8]) -> Consumed + Send + Sync>,
    #[cfg_attr(not(any(feature = "engine", feature = "lambda")), allow(dead_code))]
    window: Option<Arc<dyn super::window::Windowed>>,
}

impl fmt::Debug for AnyConsumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyConsumer")
            .field("id", &self.spec.id)
            .finish()
    }
}

impl AnyConsumer {
    /// The consumer's spec.
    pub fn spec(&self) -> &'static ConsumerSpec {
        self.spec
    }

    /// A tumbling-window consumer's aggregate (`None` for a record-by-record consumer); read
    /// by the engine and the Lambda handler.
    #[cfg(any(feature = "engine", feature = "lambda"))]
    pub(crate) fn window(&self) -> Option<&dyn super::window::Windowed> {
        self.window.as_deref()
    }

    /// Runs one record's bytes through the consumer.
    pub fn consume(&self, data: &[u8]) -> Consumed {
        (self.consume)(data)
    }

    /// Consumes one Kinesis record: its user records in order if it is a KPL aggregate,
    /// stopping at the first that fails; the record itself otherwise.
    ///
    /// # Errors
    /// The failure's message (`in a KPL aggregate: ...` for a user record).
    pub async fn consume_kinesis_record(&self, data: &[u8]) -> Result<(), String> {
        match crate::kpl::user_records(data) {
            Some(subs) => {
                for sub in subs {
                    if let Err(e) = self.consume(&sub).result().await {
                        return Err(format!("in a KPL aggregate: {e}"));
                    }
                }
                Ok(())
            }
            None => self.consume(data).result().await,
        }
    }
}

impl<I: 'static> From<ConsumerDef<I>> for AnyConsumer {
    fn from(def: ConsumerDef<I>) -> Self {
        let spec = def.spec;
        AnyConsumer {
            spec,
            window: def.window.clone(),
            consume: Arc::new(move |data| {
                let record = match def.codec.decode(data) {
                    Ok(r) => r,
                    Err(e) => {
                        return Consumed::Ready(Err(format!(
                            "record does not decode into `{}`: {e}",
                            def.codec.type_name
                        )));
                    }
                };
                match guard(|| def.call(record)) {
                    Err(m) => Consumed::Ready(Err(format!("consumer `{}` panicked: {m}", spec.id))),
                    Ok(Consumed::Ready(r)) => Consumed::Ready(r),
                    Ok(Consumed::Pending(fut)) => Consumed::Pending(Box::pin(async move {
                        match CatchUnwind(fut).await {
                            Ok(r) => r,
                            Err(m) => Err(format!("consumer `{}` panicked: {m}", spec.id)),
                        }
                    })),
                }
            }),
        }
    }
}
