//! The typed handles that `pipeline!` generates for each stage, and the [`Pipeline`] trait.
//!
//! A declaration such as
//!
//! ```text
//! stream readings: Reading { ... }
//! transform enrich: Reading -> Enriched { function: crate::enrich, ... }
//! s3 lake: Enriched { ... }
//! delivery sensor_lake: readings -> enrich -> lake;
//! ```
//!
//! gives the pipeline type the associated functions `readings() -> StreamDef<Reading>`,
//! `enrich() -> TransformDef<Reading, Enriched>`, `lake() -> S3Def<Enriched>` and
//! `sensor_lake() -> DeliveryDef`. The handles carry the stage's [spec](crate::spec) and the
//! typed glue (codec, partition keys, the user function); a [`DeliveryDef`] erases the types
//! into a [`RecordProcessor`] that turns source bytes into destination bytes exactly as the
//! Firehose -> Lambda contract does.

mod consumer;
pub(crate) mod guard;
pub(crate) mod process;
mod step;
pub mod window;

pub use self::consumer::{
    AnyConsumer, ConsumeFn, Consumed, ConsumerDef, DynConsumeFn, IntoConsumed,
};
pub use self::process::{Appended, Flows, Linked, Processing, RecordProcessor, RecordResult};
pub use self::step::Step;
pub use self::window::{Aggregate, Window};

use crate::outcome::{IntoOutcome, Outcome};
use crate::spec::{DeliverySpec, PipelineSpec, S3Spec, StreamSpec, TransformSpec};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Implemented by every type `pipeline!` declares.
pub trait Pipeline: Copy + Default + Send + Sync + 'static {
    /// The pipeline's static description.
    const SPEC: &'static PipelineSpec;

    /// The pipeline's deliveries with their typed glue, in declaration order.
    fn deliveries() -> Vec<DeliveryDef>;

    /// The pipeline's streams with their record types erased, in declaration order.
    fn streams() -> Vec<AnyStream>;

    /// The pipeline's consumers with their record types erased, in declaration order.
    fn consumers() -> Vec<AnyConsumer>;
}

// ===== Record and Codec =====

/// What a record type needs: JSON in both directions, and to move between threads.
///
/// Implemented for every `T: Serialize + DeserializeOwned + Send + 'static`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a kpipe record",
    label = "used as a record type here",
    note = "records travel as JSON: derive `serde::Serialize` and `serde::Deserialize` for `{Self}`"
)]
pub trait Record: serde::Serialize + serde::de::DeserializeOwned + Send + 'static {}

// `do_not_recommend`: a type that is not a record gets one error, `Record`'s own, instead of
// one per missing serde trait with rustc's list of the types that implement each.
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static> Record for T {}

/// The encode/decode functions of one record type (JSON).
pub struct Codec<T> {
    pub(crate) type_name: &'static str,
    pub(crate) decode: fn(&[u8]) -> Result<T, serde_json::Error>,
    pub(crate) encode_into: fn(&T, &mut Vec<u8>) -> Result<(), serde_json::Error>,
    /// Decodes one record and appends it as a row (`format: parquet`).
    #[cfg(feature = "parquet")]
    pub(crate) push_row: crate::schema::PushRow,
}

impl<T> Clone for Codec<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Codec<T> {}

impl<T> fmt::Debug for Codec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Codec")
            .field("type", &self.type_name)
            .finish()
    }
}

impl<T: Record> Codec<T> {
    /// The JSON codec of `T`.
    pub fn json(type_name: &'static str) -> Self {
        Codec {
            type_name,
            decode: crate::json::decode::<T>,
            encode_into: crate::json::encode::<T>,
            #[cfg(feature = "parquet")]
            push_row: crate::schema::push_row::<T>,
        }
    }
}

impl<T> Codec<T> {
    /// Decodes one record.
    ///
    /// # Errors
    /// When the bytes are not JSON of the record type.
    pub fn decode(&self, bytes: &[u8]) -> Result<T, serde_json::Error> {
        (self.decode)(bytes)
    }

    /// Encodes one record.
    ///
    /// # Errors
    /// When the record's `Serialize` impl fails (e.g. a map with non-string keys).
    pub fn encode(&self, record: &T) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(128);
        (self.encode_into)(record, &mut out)?;
        Ok(out)
    }

    /// Encodes one record at the end of `out`. On an error, `out` is as it was.
    ///
    /// # Errors
    /// When the record's `Serialize` impl fails (e.g. a map with non-string keys).
    pub fn encode_into(&self, record: &T, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let start = out.len();
        (self.encode_into)(record, out).inspect_err(|_| out.truncate(start))
    }
}

// ===== StreamDef =====

/// A Kinesis stream of records of type `T`.
pub struct StreamDef<T> {
    pub(crate) spec: &'static StreamSpec,
    pub(crate) codec: Codec<T>,
    pub(crate) partition_key: fn(&T) -> String,
    pub(crate) explicit_hash_key: Option<fn(&T) -> u128>,
}

impl<T> Clone for StreamDef<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for StreamDef<T> {}

impl<T> fmt::Debug for StreamDef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamDef")
            .field("spec", self.spec)
            .finish()
    }
}

impl<T> StreamDef<T> {
    /// The stream's spec.
    pub fn spec(&self) -> &'static StreamSpec {
        self.spec
    }

    /// The record's partition key, as declared by `partition_key`.
    pub fn partition_key(&self, record: &T) -> String {
        (self.partition_key)(record)
    }

    /// The record's explicit hash key, when `explicit_hash_key` is declared.
    pub fn explicit_hash_key(&self, record: &T) -> Option<u128> {
        self.explicit_hash_key.map(|f| f(record))
    }

    /// The record type's codec.
    pub fn codec(&self) -> Codec<T> {
        self.codec
    }
}

/// A stream with its record type erased, for tools that put raw bytes (the command line's
/// `run`): it tells whether bytes decode as the stream's record type, and their partition key.
#[derive(Clone)]
pub struct AnyStream {
    spec: &'static StreamSpec,
    record_type: &'static str,
    #[allow(clippy::type_complexity)]
    key_of: Arc<dyn Fn(&[u8]) -> Result<(String, Option<u128>), serde_json::Error> + Send + Sync>,
    #[allow(clippy::type_complexity)]
    typed: Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, serde_json::Error> + Send + Sync>,
}

impl fmt::Debug for AnyStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyStream")
            .field("stream", &self.spec.name)
            .field("record_type", &self.record_type)
            .finish()
    }
}

impl AnyStream {
    /// The stream's spec.
    pub fn spec(&self) -> &'static StreamSpec {
        self.spec
    }

    /// The name of the stream's record type.
    pub fn record_type(&self) -> &'static str {
        self.record_type
    }

    /// Decodes `data` as the stream's record type and returns its partition key and explicit
    /// hash key, as the typed producer would compute them.
    ///
    /// # Errors
    /// The decoding error when `data` is not a record of the stream's type.
    pub fn keys_of(&self, data: &[u8]) -> Result<(String, Option<u128>), serde_json::Error> {
        (self.key_of)(data)
    }

    /// Decodes `data` as the stream's record type and encodes it again: the record as the
    /// type sees it (unknown fields gone, fields in declaration order).
    ///
    /// # Errors
    /// The decoding error when `data` is not a record of the stream's type.
    pub fn typed_json(&self, data: &[u8]) -> Result<Vec<u8>, serde_json::Error> {
        (self.typed)(data)
    }
}

impl<T: 'static> From<StreamDef<T>> for AnyStream {
    fn from(def: StreamDef<T>) -> Self {
        AnyStream {
            spec: def.spec,
            record_type: def.codec.type_name,
            key_of: Arc::new(move |data| {
                let record = def.codec.decode(data)?;
                Ok((def.partition_key(&record), def.explicit_hash_key(&record)))
            }),
            typed: Arc::new(move |data| def.codec.encode(&def.codec.decode(data)?)),
        }
    }
}

// ===== TransformDef =====

/// The result of calling a transform: its outcome now (sync function) or a future of it
/// (async function).
pub type Call<O> = Step<Outcome<O>>;

/// A type-erased transform function.
pub type DynTransformFn<I, O> = Arc<dyn Fn(I) -> Call<O> + Send + Sync>;

/// Marker for synchronous transform functions.
#[derive(Debug)]
pub enum SyncFn {}
/// Marker for async transform functions.
#[derive(Debug)]
pub enum AsyncFn {}

/// Functions usable as a transform from `I` to `O`: `fn(I) -> R` or `async fn(I) -> R`, where
/// `R` is [`Outcome<O>`], `Result<O, E: Display>` or `Option<O>`. `Kind` is inferred.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be the function of a transform from `{I}` to `{O}`",
    label = "expected a function taking `{I}` and returning `Outcome<{O}>`, `Result<{O}, E>` with `E: Display`, or `Option<{O}>`",
    note = "a transform function takes its input record by value; it may be `async`"
)]
pub trait TransformFn<I, O, Kind>: Send + Sync + 'static {
    /// Erases the function.
    fn into_dyn(self) -> DynTransformFn<I, O>;
}

impl<I, O, F, R> TransformFn<I, O, SyncFn> for F
where
    F: Fn(I) -> R + Send + Sync + 'static,
    R: IntoOutcome<O>,
{
    fn into_dyn(self) -> DynTransformFn<I, O> {
        Arc::new(move |i| Call::Ready(self(i).into_outcome()))
    }
}

impl<I, O, F, Fut> TransformFn<I, O, AsyncFn> for F
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoOutcome<O>,
{
    fn into_dyn(self) -> DynTransformFn<I, O> {
        Arc::new(move |i| {
            let fut = self(i);
            Call::Pending(Box::pin(async move { fut.await.into_outcome() }))
        })
    }
}

/// A transform from `I` to `O`: the user function with its spec and codecs.
pub struct TransformDef<I, O> {
    pub(crate) spec: &'static TransformSpec,
    pub(crate) input: Codec<I>,
    pub(crate) output: Codec<O>,
    pub(crate) function: DynTransformFn<I, O>,
}

impl<I, O> Clone for TransformDef<I, O> {
    fn clone(&self) -> Self {
        TransformDef {
            spec: self.spec,
            input: self.input,
            output: self.output,
            function: self.function.clone(),
        }
    }
}

impl<I, O> fmt::Debug for TransformDef<I, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransformDef")
            .field("spec", self.spec)
            .finish()
    }
}

impl<I, O> TransformDef<I, O> {
    /// The transform's spec.
    pub fn spec(&self) -> &'static TransformSpec {
        self.spec
    }

    /// Calls the user function on one input (no panic catching; see [`RecordProcessor`]).
    pub fn call(&self, input: I) -> Call<O> {
        (self.function)(input)
    }

    /// The input type's codec.
    pub fn input_codec(&self) -> Codec<I> {
        self.input
    }

    /// The output type's codec.
    pub fn output_codec(&self) -> Codec<O> {
        self.output
    }
}

// ===== S3Def =====

/// A dynamic partitioning key extractor.
pub type KeyFn<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// An S3 destination of records of type `T`.
pub struct S3Def<T> {
    pub(crate) spec: &'static S3Spec,
    pub(crate) codec: Codec<T>,
    pub(crate) keys: Vec<(&'static str, KeyFn<T>)>,
}

impl<T> Clone for S3Def<T> {
    fn clone(&self) -> Self {
        S3Def {
            spec: self.spec,
            codec: self.codec,
            keys: self.keys.clone(),
        }
    }
}

impl<T> fmt::Debug for S3Def<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Def").field("spec", self.spec).finish()
    }
}

impl<T> S3Def<T> {
    /// The destination's spec.
    pub fn spec(&self) -> &'static S3Spec {
        self.spec
    }

    /// The record's dynamic partitioning keys, in declaration order.
    pub fn partition_keys(&self, record: &T) -> Vec<(&'static str, String)> {
        self.keys.iter().map(|(k, f)| (*k, f(record))).collect()
    }

    /// The record type's codec.
    pub fn codec(&self) -> Codec<T> {
        self.codec
    }
}

// ===== DeliveryDef =====

/// A Firehose delivery stream with its glue erased: source bytes in, destination bytes out.
#[derive(Clone)]
pub struct DeliveryDef {
    pub(crate) spec: &'static DeliverySpec,
    pub(crate) processor: Arc<dyn RecordProcessor>,
    /// The destination record type's row writer (`format: parquet`).
    #[cfg(feature = "parquet")]
    #[cfg_attr(not(feature = "engine"), allow(dead_code))]
    pub(crate) push_row: crate::schema::PushRow,
}

impl fmt::Debug for DeliveryDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveryDef")
            .field("spec", self.spec)
            .finish()
    }
}

impl DeliveryDef {
    /// The delivery's spec.
    pub fn spec(&self) -> &'static DeliverySpec {
        self.spec
    }

    /// The record processor: what Firehose (with the transform's Lambda, if any) does to
    /// one source record before it is buffered for S3.
    pub fn processor(&self) -> &Arc<dyn RecordProcessor> {
        &self.processor
    }
}

#[cfg(test)]
mod tests {
    use super::Codec;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Shape {
        f: f64,
        g: f32,
        s: String,
        c: char,
        o: Option<i64>,
        v: Vec<u128>,
        m: BTreeMap<u32, String>,
        b: BTreeMap<bool, ()>,
        e: Kind,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    enum Kind {
        Unit,
        Tuple(i8, String),
    }

    /// The codec writes records with kpipe's writer; what it writes must be byte for byte what
    /// serde_json writes, or a pipeline's output would depend on the codec.
    #[test]
    fn records_are_written_as_serde_json_writes_them() {
        let codec = Codec::<Shape>::json("Shape");
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut floats = vec![
            0.0,
            -0.0,
            1.0,
            32.0,
            0.1,
            1e15,
            1e16,
            1e21,
            1e22,
            1.5e-7,
            1e-5,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            9_007_199_254_740_993.0,
        ];
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            floats.push(f64::from_bits(x));
            floats.push((x % 1_000_000) as f64 / 1000.0);
        }
        let strings: Vec<String> = (0u8..0x80)
            .map(|b| format!("a{}b", b as char))
            .chain(["é日本\u{2028}\u{2029}\u{7f}".into(), String::new()])
            .collect();
        for (i, f) in floats.iter().enumerate() {
            let shape = Shape {
                f: *f,
                g: *f as f32,
                s: strings[i % strings.len()].clone(),
                c: strings[i % strings.len()].chars().nth(1).unwrap_or('\0'),
                o: (i % 2 == 0).then_some(i as i64 - 7),
                v: vec![u128::MAX, i as u128],
                m: BTreeMap::from([(i as u32, "x\"y".into())]),
                b: BTreeMap::from([(i % 3 == 0, ())]),
                e: if i % 2 == 0 {
                    Kind::Unit
                } else {
                    Kind::Tuple(-1, "\\".into())
                },
            };
            let ours = codec.encode(&shape).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&shape).unwrap(),
                "{shape:?}"
            );
        }
    }

    #[test]
    fn encoding_errors_are_serde_json_errors_and_leave_the_buffer_alone() {
        let codec = Codec::<BTreeMap<Vec<u8>, u8>>::json("Map");
        let mut out = b"kept".to_vec();
        let err = codec
            .encode_into(&BTreeMap::from([(vec![1], 1)]), &mut out)
            .unwrap_err();
        assert_eq!(err.to_string(), "key must be a string");
        assert_eq!(out, b"kept");
    }

    #[test]
    fn decoding_reports_serde_json_errors_with_positions() {
        let codec = Codec::<Shape>::json("Shape");
        let err = codec.decode(b"{\"f\": \xff}").unwrap_err();
        assert!(err.to_string().contains("line 1 column"), "{err}");
        let err = codec.decode(b"{\"f\": true}").unwrap_err();
        assert!(err.to_string().contains("line 1 column"), "{err}");
    }
}
