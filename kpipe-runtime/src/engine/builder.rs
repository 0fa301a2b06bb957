//! The local engine's builder: where objects go, the clock, the limits, the invokers; then
//! `start`, which spawns a task per delivery and consumer.

use super::clock::Clock;
use super::delivery::{DeliveryTask, LocalInvoker};
use super::naming::Ids;
use super::stream::LocalStream;
use super::{
    DirectInput, EngineError, Failure, LocalEngine, Sink, consumer, delivery, inbox, on_failure,
    staging,
};
use crate::firehose::Invoker;
use crate::pipeline::Pipeline;
use crate::spec::SourceSpec;
use object_store::ObjectStore;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A store per bucket (see [`LocalBuilder::store_per_bucket`]).
type BucketStores = Arc<dyn Fn(&str) -> Arc<dyn ObjectStore> + Send + Sync>;

/// Configures and starts the local engine; from `Pipeline::local()`.
pub struct LocalBuilder<P> {
    root: PathBuf,
    store: Option<Arc<dyn ObjectStore>>,
    per_bucket: Option<BucketStores>,
    start_ms: Option<i64>,
    enforce_limits: bool,
    seed: Option<u64>,
    progress: bool,
    write_deadline: std::time::Duration,
    /// Invokers by transform, each with the transform's spec (to check it is this pipeline's).
    invokers: Vec<(&'static crate::spec::TransformSpec, Arc<dyn Invoker>)>,
    _pipeline: PhantomData<P>,
}

impl<P> std::fmt::Debug for LocalBuilder<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBuilder")
            .field("root", &self.root)
            .field("custom_store", &self.store.is_some())
            .field("start_ms", &self.start_ms)
            .field("enforce_limits", &self.enforce_limits)
            .field("seed", &self.seed)
            .finish()
    }
}

impl<P: Pipeline> Default for LocalBuilder<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Pipeline> LocalBuilder<P> {
    /// The defaults: objects under `./kpipe-data/<bucket>/`, the system clock, no shard limits.
    pub fn new() -> Self {
        LocalBuilder {
            root: PathBuf::from("kpipe-data"),
            store: None,
            per_bucket: None,
            start_ms: None,
            enforce_limits: false,
            seed: None,
            progress: false,
            write_deadline: delivery::DEFAULT_WRITE_DEADLINE,
            invokers: Vec::new(),
            _pipeline: PhantomData,
        }
    }

    /// Write objects under this directory, one folder per bucket.
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = dir.into();
        self
    }

    /// Write objects to this store instead (keys are `<bucket>/<key>`): `InMemory` for tests,
    /// or any other `object_store` backend.
    pub fn store(mut self, store: Arc<dyn ObjectStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Write each bucket's objects to its own store, with keys as they are in the bucket:
    /// for Amazon S3 or an S3-compatible endpoint, return an `object_store` `AmazonS3` built
    /// for that bucket (object_store's `aws` feature).
    pub fn store_per_bucket(
        mut self,
        stores: impl Fn(&str) -> Arc<dyn ObjectStore> + Send + Sync + 'static,
    ) -> Self {
        self.per_bucket = Some(Arc::new(stores));
        self
    }

    /// Start the engine's clock at this wall-clock time (ms since the Unix epoch) instead of
    /// now; with tokio's paused clock this makes object keys reproducible.
    pub fn start_time_ms(mut self, ms: i64) -> Self {
        self.start_ms = Some(ms);
        self
    }

    /// Enforce the per-shard write limits (1,000 records/s and 1 MiB/s, Kinesis Data Streams quotas and limits: <https://docs.aws.amazon.com/streams/latest/dev/service-sizes-and-limits.html>):
    /// entries beyond them fail with `ProvisionedThroughputExceeded`, so producers' backoff can
    /// be tested locally.
    pub fn enforce_shard_limits(mut self, enabled: bool) -> Self {
        self.enforce_limits = enabled;
        self
    }

    /// Derive object UUIDs and random strings from this seed (reproducible keys in tests).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Show a progress line on stderr while records flow (only when stderr is a terminal).
    pub fn progress(mut self, enabled: bool) -> Self {
        self.progress = enabled;
        self
    }

    /// How long a delivery retries an object write that fails (or hangs) before its records
    /// count as undelivered (default 60 s): retries back off from 100 ms to every 5 s, as
    /// Firehose retries S3 every 5 s ("Handle data delivery failure",
    /// <https://docs.aws.amazon.com/firehose/latest/dev/retry.html>). Undelivered records
    /// make [`LocalEngine::flush`] fail and show in [`RunReport::undelivered`](super::RunReport::undelivered).
    pub fn write_deadline(mut self, deadline: std::time::Duration) -> Self {
        self.write_deadline = deadline;
        self
    }

    /// Invoke this transform (`Telemetry::enrich()`) through `invoker` instead of calling it
    /// directly, to inject failures (see [`LocalInvoker`] for the default). A transform of
    /// another pipeline makes [`start`](Self::start) fail with
    /// [`EngineError::UnknownStage`].
    pub fn invoker<I, O>(
        mut self,
        transform: crate::TransformDef<I, O>,
        invoker: Arc<dyn Invoker>,
    ) -> Self {
        self.invokers.push((transform.spec, invoker));
        self
    }

    /// Starts the engine's tasks.
    ///
    /// # Errors
    /// When the local directory cannot be created, a time zone is unknown, or there is no
    /// tokio runtime.
    pub fn start(self) -> Result<LocalEngine<P>, EngineError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(EngineError::NoRuntime);
        }
        let spec = P::SPEC;
        // Every name resolves, so the lookups below cannot miss.
        spec.check()
            .map_err(|e| EngineError::InvalidSpec(e.to_string()))?;
        if let Some((t, _)) = self
            .invokers
            .iter()
            .find(|(t, _)| spec.transform(t.id) != Some(*t))
        {
            return Err(EngineError::UnknownStage(format!("transform `{}`", t.id)));
        }
        let local_fs = self.store.is_none() && self.per_bucket.is_none();
        let shared: Arc<dyn ObjectStore> = match self.store {
            Some(s) => s,
            None if self.per_bucket.is_some() => Arc::new(object_store::memory::InMemory::new()),
            None => {
                std::fs::create_dir_all(&self.root)
                    .map_err(|e| EngineError::Store(format!("{}: {e}", self.root.display())))?;
                staging::remove_leftovers(&self.root)
                    .map_err(|e| EngineError::Store(format!("{}: {e}", self.root.display())))?;
                // Each object, and the folder entry naming it, is on disk before its write
                // counts as done, so a checkpoint never covers an object a crash can lose.
                let fs = object_store::local::LocalFileSystem::new_with_prefix(&self.root)
                    .map_err(|e| EngineError::Store(e.to_string()))?
                    .with_fsync(true);
                Arc::new(fs)
            }
        };
        let clock = self.start_ms.map_or_else(Clock::system, Clock::starting_at);
        let failure = Failure::default();
        let streams: HashMap<&'static str, Arc<LocalStream>> = spec
            .streams
            .iter()
            .map(|s| {
                (
                    s.id,
                    Arc::new(LocalStream::new(
                        s,
                        self.enforce_limits,
                        clock,
                        Arc::clone(&failure),
                    )),
                )
            })
            .collect();
        let progress = Arc::new(AtomicU64::new(0));
        let sink_for = |bucket: &str| match &self.per_bucket {
            Some(stores) => Sink {
                store: stores(bucket),
                bucket_in_key: false,
                filesystem: false,
            },
            None => Sink {
                store: Arc::clone(&shared),
                bucket_in_key: true,
                filesystem: local_fs,
            },
        };
        let region = spec.region.unwrap_or("us-east-1");
        let mut directs = HashMap::new();
        let mut tasks = Vec::new();
        for (i, def) in P::deliveries().into_iter().enumerate() {
            let d = def.spec();
            let view = spec
                .view(d)
                .map_err(|e| EngineError::InvalidSpec(e.to_string()))?;
            let s3 = view.destination;
            let tz = match s3.time_zone {
                Some(name) => Some(name.parse::<chrono_tz::Tz>().map_err(|_| {
                    EngineError::InvalidTimeZone {
                        destination: s3.id,
                        time_zone: name,
                    }
                })?),
                None => None,
            };
            let transform = view.transform.map(|t| {
                let invoker = self
                    .invokers
                    .iter()
                    .find(|(spec, _)| spec.id == t.id)
                    .map(|(_, inv)| Arc::clone(inv))
                    .unwrap_or_else(|| Arc::new(LocalInvoker::new(Arc::clone(def.processor()))));
                (t, invoker)
            });
            let lambda_arn = view
                .transform
                .map(|t| crate::arn::Scope::local(region).function(t.lambda.name));
            let conversion = match s3.conversion {
                Some(c) => Some((
                    Arc::new(columnar_converter(s3, &c, &def)?),
                    super::columnar::catalog_table(&c, region),
                )),
                None => None,
            };
            let (tx, rx) = inbox::inbox();
            match d.source {
                SourceSpec::Stream(id) => streams[id].subscribe(tx),
                SourceSpec::Direct => {
                    directs.insert(d.id, DirectInput::new(tx, clock, Arc::clone(&failure)));
                }
            }
            let task = DeliveryTask {
                spec: d,
                s3,
                transform,
                processor: Arc::clone(def.processor()),
                lambda_arn,
                rx,
                clock,
                sink: sink_for(s3.bucket),
                backup: view.backup.map(|b| delivery::Backup {
                    s3: b,
                    sink: sink_for(b.bucket),
                }),
                conversion,
                ids: match self.seed {
                    Some(seed) => Ids::Seeded(seed.wrapping_add(i as u64)),
                    None => Ids::Random,
                },
                tz,
                progress: Arc::clone(&progress),
                write_deadline: self.write_deadline,
                failure: Arc::clone(&failure),
            };
            let span = tracing::info_span!("delivery", name = d.name, bucket = s3.bucket);
            tasks.push(tokio::spawn(tracing::Instrument::instrument(
                task.run(),
                span,
            )));
        }
        let mut consumers = Vec::new();
        for c in P::consumers() {
            let stream = &streams[c.spec().stream];
            let (tx, rx) = inbox::inbox();
            stream.subscribe(tx);
            let spec = c.spec();
            let filter = consumer::compile_filters(spec.filters).map_err(|message| {
                EngineError::InvalidFilter {
                    consumer: spec.id,
                    message,
                }
            })?;
            let on_failure = spec
                .on_failure
                .map(|destination| on_failure::OnFailureSink {
                    destination,
                    sink: match destination {
                        crate::spec::OnFailure::S3(_) => sink_for(destination.name()),
                        _ => Sink {
                            store: Arc::clone(&shared),
                            bucket_in_key: true,
                            filesystem: local_fs,
                        },
                    },
                    mapping_uuid: uuid::Uuid::new_v4().to_string(),
                    function_arn: crate::arn::Scope::local(region).function(spec.lambda.name),
                    stream_arn: crate::arn::Scope::local(region).stream(stream.spec.name),
                    write_deadline: self.write_deadline,
                });
            let task = consumer::ConsumerTask {
                spec,
                stream_name: stream.spec.name,
                shards: stream.shard_count(),
                consumer: c,
                rx,
                clock,
                filter,
                on_failure,
            };
            consumers.push(tokio::spawn(task.run()));
        }
        let bar =
            (self.progress && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
                let bar = indicatif::ProgressBar::new_spinner();
                bar.set_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                        .expect("engine: the progress template is valid"),
                );
                let counter = Arc::clone(&progress);
                let b = bar.clone();
                let handle = tokio::spawn(async move {
                    let mut tick = tokio::time::interval(std::time::Duration::from_millis(100));
                    loop {
                        tick.tick().await;
                        b.set_message(format!(
                            "{} records through the pipeline",
                            counter.load(Ordering::Relaxed)
                        ));
                        b.tick();
                    }
                });
                (bar, handle)
            });
        Ok(LocalEngine {
            streams,
            directs,
            tasks,
            consumers,
            clock,
            started: tokio::time::Instant::now(),
            progress: bar,
            failure,
            shut_down: false,
            _pipeline: PhantomData,
        })
    }
}

/// The converter of a `format: parquet` destination: the columns derived from its record
/// type, or why there are none.
#[cfg(feature = "parquet")]
fn columnar_converter(
    s3: &'static crate::spec::S3Spec,
    c: &crate::spec::ConversionSpec,
    def: &crate::pipeline::DeliveryDef,
) -> Result<super::columnar::Converter, EngineError> {
    super::columnar::Converter::new(s3, c, def.push_row).map_err(EngineError::Conversion)
}

/// Without the `parquet` feature `pipeline!` output never declares a conversion.
#[cfg(not(feature = "parquet"))]
fn columnar_converter(
    s3: &'static crate::spec::S3Spec,
    _: &crate::spec::ConversionSpec,
    _: &crate::pipeline::DeliveryDef,
) -> Result<super::columnar::Converter, EngineError> {
    Err(EngineError::Conversion(format!(
        "destination `{}` converts to Parquet or ORC, which needs kpipe-runtime's `parquet` feature",
        s3.id
    )))
}
