//! Tumbling-window consumers (`tumbling_window: 60s`): an aggregate built from a stream's
//! records, one per shard and window, and acted on when the window closes ("Using tumbling
//! windows with Kinesis Data Streams",
//! <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
//!
//! Lambda keeps no state between invocations: each returns the aggregate as JSON, and Lambda
//! passes it to the next invocation of the same shard and window, then calls the function a
//! last time when the window ends. kpipe does the same with the user's [`Aggregate`] type,
//! which is (de)serialized between invocations, so what works locally works in Lambda.
//!
//! ```
//! use kpipe_runtime::{Aggregate, Window};
//! use serde::{Deserialize, Serialize};
//! use std::collections::BTreeMap;
//!
//! # #[derive(Deserialize)] struct Reading { site: String }
//! #[derive(Default, Serialize, Deserialize)]
//! struct SiteCounts {
//!     readings: BTreeMap<String, u64>,
//! }
//!
//! impl Aggregate for SiteCounts {
//!     type Record = Reading;
//!     type Error = String;
//!
//!     fn add(&mut self, r: Reading) -> Result<(), String> {
//!         *self.readings.entry(r.site).or_default() += 1;
//!         Ok(())
//!     }
//!
//!     async fn close(self, window: Window) -> Result<(), String> {
//!         println!("{}..{}: {:?}", window.start_ms, window.end_ms, self.readings);
//!         Ok(())
//!     }
//! }
//! ```

// The erased state is read by the engine and the Lambda handler; without either it is only
// built.
#![cfg_attr(not(any(feature = "engine", feature = "lambda")), allow(dead_code))]

use super::guard::{CatchUnwind, guard};
use super::{BoxFuture, Codec};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Display;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

/// Lambda's limit on the state of one shard's window: past it the window ends early ("Using
/// tumbling windows with Kinesis Data Streams",
/// <https://docs.aws.amazon.com/lambda/latest/dg/services-kinesis-windows.html>).
pub const MAX_STATE_BYTES: usize = 1024 * 1024;

/// One shard's tumbling window, as the final invocation describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Start, in milliseconds since the Unix epoch (inclusive).
    pub start_ms: i64,
    /// End, in milliseconds since the Unix epoch (exclusive).
    pub end_ms: i64,
    /// The shard (`shardId-000000000000`).
    pub shard_id: String,
    /// The window ended before its time because its state grew past [`MAX_STATE_BYTES`]
    /// (Lambda's `isWindowTerminatedEarly`).
    pub terminated_early: bool,
}

/// The aggregate of a tumbling-window consumer: its state is this type, starting from
/// `Default` in each shard's window; [`add`](Aggregate::add) takes the window's records in
/// shard order and [`close`](Aggregate::close) acts on the result when the window ends.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tumbling-window aggregate",
    label = "a consumer with `tumbling_window` names a type implementing `kpipe_runtime::Aggregate`",
    note = "implement `Aggregate` with `type Record` = the stream's record type; the type also needs `Default`, `Serialize` and `Deserialize`"
)]
pub trait Aggregate: Default + Serialize + DeserializeOwned + Send + 'static {
    /// The stream's record type.
    type Record;
    /// What `add` and `close` fail with.
    type Error: Display;

    /// Adds one record. An `Err` fails the record: Lambda retries from it, with the state
    /// as it was before it.
    ///
    /// # Errors
    /// Whatever makes the record fail.
    fn add(&mut self, record: Self::Record) -> Result<(), Self::Error>;

    /// The window has ended: act on the aggregate (write it somewhere). An `Err` fails the
    /// final invocation, which is retried like any other.
    ///
    /// # Errors
    /// Whatever makes the final invocation fail.
    fn close(self, window: Window) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// A window's state while records are added: the aggregate behind its record type.
pub(crate) trait WindowState: Send {
    /// Adds one record's bytes (decoded into the record type).
    ///
    /// # Errors
    /// The record does not decode, or `add` failed or panicked.
    fn add(&mut self, data: &[u8]) -> Result<(), String>;

    /// The state as JSON, to hand to the next invocation.
    ///
    /// # Errors
    /// The aggregate does not serialise.
    fn save(&self) -> Result<serde_json::Value, String>;

    /// Ends the window: the aggregate's `close`.
    fn close(self: Box<Self>, window: Window) -> BoxFuture<Result<(), String>>;
}

/// A tumbling-window consumer with its types erased.
pub(crate) trait Windowed: Send + Sync {
    /// The state of a window from what the last invocation returned (`null` or `{}` for a
    /// new window).
    ///
    /// # Errors
    /// The state does not deserialise into the aggregate type.
    fn resume(&self, state: &serde_json::Value) -> Result<Box<dyn WindowState>, String>;
}

struct Erased<S, I> {
    codec: Codec<I>,
    id: &'static str,
    _state: PhantomData<fn() -> S>,
}

struct State<S, I> {
    value: S,
    codec: Codec<I>,
    id: &'static str,
}

impl<S: Aggregate<Record = I>, I: 'static> Windowed for Erased<S, I> {
    fn resume(&self, state: &serde_json::Value) -> Result<Box<dyn WindowState>, String> {
        let empty = state.is_null() || state.as_object().is_some_and(|m| m.is_empty());
        let value = if empty {
            S::default()
        } else {
            S::deserialize(state).map_err(|e| {
                format!(
                    "consumer `{}`: the window's state does not deserialise: {e}",
                    self.id
                )
            })?
        };
        Ok(Box::new(State {
            value,
            codec: self.codec,
            id: self.id,
        }))
    }
}

impl<S: Aggregate<Record = I>, I: 'static> WindowState for State<S, I> {
    fn add(&mut self, data: &[u8]) -> Result<(), String> {
        let record = self.codec.decode(data).map_err(|e| {
            format!(
                "record does not decode into `{}`: {e}",
                self.codec.type_name
            )
        })?;
        match guard(|| self.value.add(record)) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(m) => Err(format!("consumer `{}` panicked: {m}", self.id)),
        }
    }

    fn save(&self) -> Result<serde_json::Value, String> {
        serde_json::to_value(&self.value)
            .map_err(|e| format!("consumer `{}`: the state does not serialise: {e}", self.id))
    }

    fn close(self: Box<Self>, window: Window) -> BoxFuture<Result<(), String>> {
        let id = self.id;
        let closing = match guard(move || self.value.close(window)) {
            Ok(f) => f,
            Err(m) => {
                return Box::pin(async move { Err(format!("consumer `{id}` panicked: {m}")) });
            }
        };
        Box::pin(async move {
            match CatchUnwind(Box::pin(closing)).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(m) => Err(format!("consumer `{id}` panicked: {m}")),
            }
        })
    }
}

/// Erases aggregate `S` over records `I`.
pub(crate) fn erase<S: Aggregate<Record = I>, I: 'static>(
    id: &'static str,
    codec: Codec<I>,
) -> Arc<dyn Windowed> {
    Arc::new(Erased::<S, I> {
        codec,
        id,
        _state: PhantomData,
    })
}
