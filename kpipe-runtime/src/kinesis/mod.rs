//! The Kinesis data path (feature `aws`): records onto a real stream, and from it into the
//! local engine. Provisioning the stream itself is `aws`'s.
//!
//! - [`KinesisProducer`] (`producer.rs`): typed `PutRecords` with the stream's codec and keys,
//!   put-time limits, retries and optional KPL aggregation.
//! - [`KinesisReader`] (`reader.rs`, feature `engine` too): every shard read into a
//!   [`LocalEngine`](crate::LocalEngine), with the GetRecords limits kept.
//! - Checkpoints (`checkpoints.rs`): what was delivered, per shard, so a restart resumes after
//!   it.
//! - Shard lineage (`lineage.rs`): parents read before their children.

#[cfg(feature = "engine")]
mod checkpoints;
#[cfg(feature = "engine")]
mod lineage;
mod producer;
#[cfg(feature = "engine")]
mod reader;

#[cfg(feature = "engine")]
pub use self::checkpoints::{CheckpointStore, Checkpoints, FileCheckpoints};
pub use self::producer::*;
#[cfg(feature = "engine")]
pub use self::reader::*;
