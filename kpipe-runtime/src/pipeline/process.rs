//! One source record through a delivery: decode, transform, partition, encode.
//!
//! This is the record-level half of the Firehose -> Lambda contract (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>): each
//! record ends `Ok` (with output bytes and partition keys), `Dropped`, or `ProcessingFailed`
//! with a message. Bytes that do not decode and panics anywhere in user code (the function,
//! `Deserialize` / `Serialize` impls, partition-key closures) are failures of
//! that record only; nothing here panics or drops a record silently.

use super::guard::{CatchUnwind, guard};
use super::{BoxFuture, Call, Codec, DeliveryDef, DynTransformFn, KeyFn, S3Def, TransformDef};
use crate::outcome::Outcome;
use crate::spec::DeliverySpec;
use std::fmt;
use std::sync::Arc;

/// What became of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordResult {
    /// Transformed (or passed through): the bytes to deliver and the dynamic partitioning
    /// keys, in declaration order.
    Ok {
        /// Bytes to deliver, with the newline delimiter when the destination declares one.
        data: Vec<u8>,
        /// `(key, value)` for each declared partition key.
        partition_keys: Vec<(&'static str, String)>,
    },
    /// Intentionally discarded by the transform.
    Dropped,
    /// Could not be processed; goes to the error prefix as `processing-failed`.
    Failed(String),
}

/// A record's processing: its result now, or pending on an async transform.
pub type Processing = super::Step<RecordResult>;

/// What became of one record processed into a caller's buffer
/// ([`RecordProcessor::process_into`]).
pub enum Appended {
    /// The record's output was appended to the buffer; these are its dynamic partitioning
    /// keys, in declaration order.
    Ok(Vec<(&'static str, String)>),
    /// Intentionally discarded by the transform; nothing was appended.
    Dropped,
    /// Could not be processed; nothing was appended.
    Failed(String),
    /// Waiting on an async transform; nothing was appended: the result carries its bytes.
    Pending(BoxFuture<RecordResult>),
}

impl fmt::Debug for Appended {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Appended::Ok(keys) => f.debug_tuple("Appended::Ok").field(keys).finish(),
            Appended::Dropped => f.write_str("Appended::Dropped"),
            Appended::Failed(m) => f.debug_tuple("Appended::Failed").field(m).finish(),
            Appended::Pending(_) => f.write_str("Appended::Pending(..)"),
        }
    }
}

/// Turns one source record's bytes into what the destination receives.
pub trait RecordProcessor: Send + Sync {
    /// Processes one record, appending its output bytes to `out` (so a caller can reuse one
    /// buffer for many records). Only an `Ok` result appends anything.
    fn process_into(&self, data: &[u8], out: &mut Vec<u8>) -> Appended;

    /// Processes one record into bytes of its own.
    fn process(&self, data: &[u8]) -> Processing {
        // Outputs are usually about as large as their input: one allocation, no regrowth.
        let mut out = Vec::with_capacity(data.len() + 64);
        Processing::Ready(match self.process_into(data, &mut out) {
            Appended::Ok(partition_keys) => RecordResult::Ok {
                data: out,
                partition_keys,
            },
            Appended::Dropped => RecordResult::Dropped,
            Appended::Failed(m) => RecordResult::Failed(m),
            Appended::Pending(f) => return Processing::Pending(f),
        })
    }
}

/// Converts a record of one stage's type into the next stage's type. Implemented only for
/// `T -> T`: a delivery whose stages do not line up fails to compile with this message,
/// at the stage in the delivery's route.
#[diagnostic::on_unimplemented(
    message = "type mismatch in delivery: records of type `{Self}` flow into a stage that takes `{To}`",
    label = "this stage takes `{To}`, but receives `{Self}`",
    note = "each stage of a delivery must take the record type the previous stage produces"
)]
///
/// The two links of a delivery are methods of this trait whose arguments are the stages, so
/// that rustc reports a mismatch with this trait's message at the call, which generated code
/// spans with the stage's name in the delivery's route (and nothing points into kpipe).
pub trait Flows<To>: Sized {
    /// The identity conversion.
    fn flow(self) -> To;

    /// Links a delivery's source (of records `Self`) to a transform taking `To`.
    #[doc(hidden)]
    fn __kpipe_then<C: 'static>(
        source: Codec<Self>,
        transform: TransformDef<To, C>,
    ) -> Linked<Self, C>
    where
        Self: 'static,
        To: 'static,
    {
        let f = transform.function;
        Linked {
            source,
            link: Link::Transform(transform.spec.id, Arc::new(move |a: Self| f(a.flow()))),
        }
    }

    /// Checks that a delivery's `s3_backup` destination takes the source's records (`Self`):
    /// the backup gets them as they were before the transform.
    #[doc(hidden)]
    fn __kpipe_backup(_source: &Codec<Self>, _backup: S3Def<To>) {}

    /// Finishes a delivery whose records reach the destination as `Self`, into a destination
    /// of `To` records.
    #[doc(hidden)]
    fn __kpipe_into<A: Send + 'static>(
        linked: Linked<A, Self>,
        spec: &'static DeliverySpec,
        destination: S3Def<To>,
    ) -> DeliveryDef
    where
        Self: Send + 'static,
        To: Send + 'static,
    {
        let newline = destination.spec.newline;
        // Only `partitionKeyFromLambda` keys are the transform's to compute; Firehose reads
        // `partitionKeyFromQuery` keys itself, with jq, from what the transform returns.
        let lambda_key = |name: &str| {
            destination
                .spec
                .partition_keys
                .iter()
                .any(|k| k.name == name && k.source == crate::spec::KeySource::Lambda)
        };
        let keys = destination
            .keys
            .into_iter()
            .filter(|(name, _)| lambda_key(name))
            .collect();
        DeliveryDef {
            spec,
            #[cfg(feature = "parquet")]
            push_row: destination.codec.push_row,
            processor: Arc::new(Processor {
                linked,
                output: Arc::new(Output {
                    flow: <Self as Flows<To>>::flow,
                    dest: destination.codec,
                    keys,
                    newline,
                }),
            }),
        }
    }
}

impl<T> Flows<T> for T {
    fn flow(self) -> T {
        self
    }
}

/// A second impl of [`Flows`] that no stage type ever matches. With two impls, rustc cannot
/// infer a stage's type from the previous one, so a mismatch is reported through `Flows`'s
/// message at the stage in the route instead of as a bare "mismatched types".
#[doc(hidden)]
#[derive(Debug)]
pub struct NoFlow<T>(std::marker::PhantomData<T>);

impl<T> Flows<NoFlow<T>> for T {
    fn flow(self) -> NoFlow<T> {
        NoFlow(std::marker::PhantomData)
    }
}

impl<A, C> fmt::Debug for Linked<A, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Linked")
            .field("source", &self.source)
            .field(
                "transform",
                &match &self.link {
                    Link::Transform(id, _) => Some(*id),
                    Link::Pass(_) => None,
                },
            )
            .finish()
    }
}

/// The source side of a delivery, linked to its transform (or to nothing). Built by the
/// code `pipeline!` generates; not for direct use.
#[doc(hidden)]
pub struct Linked<A, C> {
    pub(crate) source: Codec<A>,
    pub(crate) link: Link<A, C>,
}

/// How a delivery's source records become what its destination takes: through the
/// transform, or unchanged. Exactly one of the two, by construction.
pub(crate) enum Link<A, C> {
    /// The transform (its id, for messages) and its function.
    Transform(&'static str, DynTransformFn<A, C>),
    /// A delivery without a transform: the identity `A -> C` (`A == C` there).
    Pass(fn(A) -> C),
}

/// The destination side of a delivery: from the transform's output to delivered bytes.
pub(crate) struct Output<C, D> {
    pub(crate) flow: fn(C) -> D,
    pub(crate) dest: Codec<D>,
    pub(crate) keys: Vec<(&'static str, KeyFn<D>)>,
    pub(crate) newline: bool,
}

impl<C, D> Output<C, D> {
    /// Keys, encoding (unless the original bytes `keep` are delivered) and the delimiter,
    /// appended to `buf`; the keys, or why the output does not encode. A key closure or a
    /// `Serialize` impl that panics fails this record only, with a message naming it.
    fn finish_into(&self, out: D, keep: Option<&[u8]>, buf: &mut Vec<u8>) -> Result<Keys, String> {
        let mut partition_keys = Vec::with_capacity(self.keys.len());
        for (k, f) in &self.keys {
            match guard(|| f(&out)) {
                Ok(v) => partition_keys.push((*k, v)),
                Err(m) => return Err(format!("partition key `{k}` panicked: {m}")),
            }
        }
        match keep {
            Some(d) => buf.extend_from_slice(d),
            None => {
                let start = buf.len();
                let encoded = guard(|| self.dest.encode_into(&out, buf));
                let message = match encoded {
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(format!("does not encode as JSON: {e}")),
                    Err(m) => Some(format!("panicked while encoding: {m}")),
                };
                if let Some(m) = message {
                    buf.truncate(start);
                    return Err(format!("output of type `{}` {m}", self.dest.type_name));
                }
            }
        }
        if self.newline {
            buf.push(b'\n');
        }
        Ok(partition_keys)
    }

    fn outcome_into(&self, outcome: Outcome<C>, buf: &mut Vec<u8>) -> Appended {
        match outcome {
            Outcome::Ok(c) => match self.finish_into((self.flow)(c), None, buf) {
                Ok(keys) => Appended::Ok(keys),
                Err(m) => Appended::Failed(m),
            },
            Outcome::Dropped => Appended::Dropped,
            Outcome::Failed(m) => Appended::Failed(m),
        }
    }

    /// An async transform's outcome, into bytes of its own.
    fn outcome(&self, outcome: Outcome<C>) -> RecordResult {
        match outcome {
            Outcome::Ok(c) => {
                let mut data = Vec::new();
                match self.finish_into((self.flow)(c), None, &mut data) {
                    Ok(partition_keys) => RecordResult::Ok {
                        data,
                        partition_keys,
                    },
                    Err(m) => RecordResult::Failed(m),
                }
            }
            Outcome::Dropped => RecordResult::Dropped,
            Outcome::Failed(m) => RecordResult::Failed(m),
        }
    }
}

/// A record's dynamic partitioning keys, in declaration order.
type Keys = Vec<(&'static str, String)>;

/// A whole delivery's record path.
pub(crate) struct Processor<A, C, D> {
    pub(crate) linked: Linked<A, C>,
    pub(crate) output: Arc<Output<C, D>>,
}

impl<A, C, D> RecordProcessor for Processor<A, C, D>
where
    A: Send + 'static,
    C: Send + 'static,
    D: Send + 'static,
{
    /// Every piece of user code on the record's path (its `Deserialize` impl, the function,
    /// partition-key closures, its `Serialize` impl) runs under `guard`: a panic fails
    /// this record only, and nothing of it stays in `buf`.
    fn process_into(&self, data: &[u8], buf: &mut Vec<u8>) -> Appended {
        let start = buf.len();
        match guard(|| self.process_unguarded(data, buf)) {
            Ok(ok @ Appended::Ok(_)) => ok,
            Ok(other) => {
                buf.truncate(start);
                other
            }
            Err(m) => {
                buf.truncate(start);
                Appended::Failed(format!("record processing panicked: {m}"))
            }
        }
    }
}

impl<A, C, D> Processor<A, C, D>
where
    A: Send + 'static,
    C: Send + 'static,
    D: Send + 'static,
{
    fn process_unguarded(&self, data: &[u8], buf: &mut Vec<u8>) -> Appended {
        let out = &self.output;
        // Without a transform and without partition keys the bytes pass through untouched.
        if matches!(self.linked.link, Link::Pass(_)) && out.keys.is_empty() {
            buf.extend_from_slice(data);
            if out.newline {
                buf.push(b'\n');
            }
            return Appended::Ok(Vec::new());
        }
        let source = &self.linked.source;
        let input = match guard(|| source.decode(data)) {
            Ok(Ok(a)) => a,
            Ok(Err(e)) => {
                return Appended::Failed(format!(
                    "record does not decode into `{}`: {e}",
                    source.type_name
                ));
            }
            Err(m) => {
                return Appended::Failed(format!(
                    "decoding into `{}` panicked: {m}",
                    source.type_name
                ));
            }
        };
        let (id, function) = match &self.linked.link {
            Link::Transform(id, function) => (id, function),
            // Partition keys by query on an untransformed record: its bytes are kept.
            Link::Pass(pass) => {
                return match out.finish_into((out.flow)(pass(input)), Some(data), buf) {
                    Ok(keys) => Appended::Ok(keys),
                    Err(m) => Appended::Failed(m),
                };
            }
        };
        match guard(|| function(input)) {
            Err(m) => Appended::Failed(format!("transform `{id}` panicked: {m}")),
            Ok(Call::Ready(outcome)) => out.outcome_into(outcome, buf),
            Ok(Call::Pending(fut)) => {
                let out = Arc::clone(out);
                let id = *id;
                Appended::Pending(Box::pin(async move {
                    match CatchUnwind(fut).await {
                        // `outcome` runs the key closures and the encoder under guard.
                        Ok(outcome) => out.outcome(outcome),
                        Err(m) => RecordResult::Failed(format!("transform `{id}` panicked: {m}")),
                    }
                }))
            }
        }
    }
}
