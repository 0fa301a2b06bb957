#![doc = include_str!("../README.md")]

#[doc(hidden)]
pub mod __private;
pub mod arn;
#[cfg(any(feature = "cli", feature = "aws"))]
pub mod artifacts;
#[cfg(feature = "aws")]
pub mod aws;
mod bytes;
#[cfg(feature = "cli")]
pub mod cli;
pub mod cloudformation;
pub mod desired;
#[cfg(feature = "engine")]
pub mod engine;
pub mod estimate;
pub mod firehose;
mod json;
#[cfg(feature = "aws")]
pub mod kinesis;
pub mod kpl;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod limits;
#[cfg(any(feature = "cli", feature = "lambda"))]
mod logging;
mod macros;
pub mod outcome;
pub mod pipeline;
pub mod schema;
pub mod spec;

#[cfg(feature = "engine")]
pub use crate::engine::{LocalBuilder, LocalEngine, RunReport};
pub use crate::outcome::{IntoOutcome, Outcome};
pub use crate::pipeline::{
    Aggregate, AnyConsumer, AnyStream, Appended, Call, Codec, ConsumerDef, DeliveryDef, Pipeline,
    Processing, Record, RecordProcessor, RecordResult, S3Def, Step, StreamDef, TransformDef,
    Window,
};
pub use crate::spec::PipelineSpec;
