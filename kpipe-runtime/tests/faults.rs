//! Faults injected into the local engine: an object store that fails, fails for a while, hangs
//! or panics; user code that panics in every position; an invoker that panics. Nothing is
//! counted delivered that the store did not acknowledge, nothing is lost silently, and one bad
//! record fails alone. All on tokio's paused clock.

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use kpipe_runtime::Outcome;
use kpipe_runtime::engine::LocalInvoker;
use kpipe_runtime::engine::object_store::{
    self, CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, memory::InMemory,
    path::Path,
};
use kpipe_runtime::firehose::{BatchRecord, InvokeFuture, Invoker};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
}

kpipe_runtime::pipeline! {
    pipeline Plain {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        s3 lake: Reading { bucket: "acme-lake", buffer: 1MiB or 60s }
        delivery to_lake: readings -> lake;
    }
}

/// What the store does with a put.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Every put fails.
    Fail,
    /// Puts fail until this much (paused) time has passed since the store was made.
    FailFor(Duration),
    /// Puts never answer until this much time has passed (then they succeed).
    HangFor(Duration),
    /// The first `n` puts panic.
    Panic(u32),
}

/// An in-memory store whose puts fail, hang or panic as told.
#[derive(Debug)]
struct Faulty {
    inner: InMemory,
    fault: Fault,
    made: Instant,
    puts: AtomicU32,
}

impl Faulty {
    fn new(fault: Fault) -> Arc<Self> {
        Arc::new(Faulty {
            inner: InMemory::new(),
            fault,
            made: Instant::now(),
            puts: AtomicU32::new(0),
        })
    }
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({:?})", self.fault)
    }
}

fn injected() -> object_store::Error {
    object_store::Error::Generic {
        store: "Faulty",
        source: "injected failure".into(),
    }
}

#[async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let n = self.puts.fetch_add(1, Ordering::SeqCst);
        match self.fault {
            Fault::Fail => return Err(injected()),
            Fault::FailFor(d) if self.made.elapsed() < d => return Err(injected()),
            Fault::HangFor(d) => tokio::time::sleep_until(self.made + d).await,
            Fault::Panic(k) if n < k => panic!("injected panic in put"),
            _ => {}
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// Every line of every object in the store.
async fn stored_lines(store: &Faulty) -> usize {
    let mut n = 0;
    let mut list = store.inner.list(None);
    while let Some(meta) = list.next().await {
        let bytes = store
            .inner
            .get(&meta.unwrap().location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        n += bytes.iter().filter(|b| **b == b'\n').count();
    }
    n
}

fn readings(n: usize) -> Vec<Reading> {
    (0..n)
        .map(|i| Reading {
            sensor_id: format!("s-{i}"),
            site: ["oslo", "lima"][i % 2].into(),
            celsius: 20.0,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_store_that_keeps_failing_leaves_records_undelivered_not_delivered() {
    let store = Faulty::new(Fault::Fail);
    let engine = Plain::local()
        .store(store.clone())
        .write_deadline(Duration::from_secs(20))
        .start()
        .unwrap();
    let p = engine.producer(Plain::readings()).unwrap();
    p.put_batch(&readings(200)).await.unwrap();
    let flushed = engine.flush().await;
    let err = flushed.expect_err("a flush whose objects were not stored fails");
    assert!(err.to_string().contains("200 records undelivered"), "{err}");
    // It was retried with backoff until the deadline: 100 ms doubling to 5 s over 20 s.
    let attempts = store.puts.load(Ordering::SeqCst);
    assert!((6..=12).contains(&attempts), "{attempts} attempts");

    // Records put later may be stored, but the flush still fails: a checkpoint may never pass
    // the records that were not.
    let engine_report = {
        let store_ok = stored_lines(&store).await;
        assert_eq!(store_ok, 0);
        engine.shutdown().await.unwrap()
    };
    let d = &engine_report.deliveries[0];
    assert_eq!(
        (d.received, d.delivered, d.failed, d.undelivered),
        (200, 0, 0, 200)
    );
    assert_eq!(d.destination.undelivered, 200);
    assert!(engine_report.is_conserved());
    assert_eq!(engine_report.undelivered(), 200);
    assert!(d.errors[0].contains("injected failure"), "{:?}", d.errors);
    let table = engine_report.to_string();
    assert!(table.contains("200 records UNDELIVERED"), "{table}");
}

#[tokio::test(start_paused = true)]
async fn a_store_that_fails_for_a_while_gets_everything_once_it_recovers() {
    let store = Faulty::new(Fault::FailFor(Duration::from_secs(12)));
    let engine = Plain::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Plain::readings()).unwrap();
    p.put_batch(&readings(300)).await.unwrap();
    engine
        .flush()
        .await
        .expect("the write is retried until it succeeds");
    assert_eq!(stored_lines(&store).await, 300);
    assert!(store.puts.load(Ordering::SeqCst) > 1);
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert_eq!((d.delivered, d.undelivered), (300, 0));
    assert!(report.is_conserved());
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_times_out_and_is_retried() {
    // Each attempt gets 30 s; the store answers after 45 s, so the second attempt succeeds.
    let store = Faulty::new(Fault::HangFor(Duration::from_secs(45)));
    let engine = Plain::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Plain::readings()).unwrap();
    p.put_batch(&readings(10)).await.unwrap();
    engine.flush().await.unwrap();
    assert_eq!(stored_lines(&store).await, 10);
    assert!(store.puts.load(Ordering::SeqCst) >= 2);
    engine.shutdown().await.unwrap();

    // A store that hangs past the deadline: undelivered, and shutdown still ends.
    let store = Faulty::new(Fault::HangFor(Duration::from_secs(3600)));
    let engine = Plain::local()
        .store(store.clone())
        .write_deadline(Duration::from_secs(40))
        .start()
        .unwrap();
    let p = engine.producer(Plain::readings()).unwrap();
    p.put_batch(&readings(10)).await.unwrap();
    let started = Instant::now();
    let report = engine.shutdown().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(report.deliveries[0].undelivered, 10);
    assert!(report.deliveries[0].errors[0].contains("no answer"));
}

#[tokio::test(start_paused = true)]
async fn a_store_that_panics_is_a_failed_attempt() {
    let store = Faulty::new(Fault::Panic(2));
    let engine = Plain::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Plain::readings()).unwrap();
    p.put_batch(&readings(20)).await.unwrap();
    engine.flush().await.unwrap();
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.deliveries[0].delivered, 20);
    assert_eq!(store.puts.load(Ordering::SeqCst), 3);
}

// ---- Panics in user code: only the record that caused it fails. ----

/// A record whose `Serialize` impl panics for one value and `Deserialize` for another.
#[derive(Clone, Debug, PartialEq, Deserialize)]
struct Fragile {
    id: String,
    #[serde(deserialize_with = "deserialize_site")]
    site: String,
}

fn deserialize_site<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    assert!(s != "panic-on-decode", "injected panic in Deserialize");
    Ok(s)
}

impl Serialize for Fragile {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        assert!(self.id != "panic-on-encode", "injected panic in Serialize");
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Fragile", 2)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("site", &self.site)?;
        st.end()
    }
}

fn site_key(t: &Fragile) -> String {
    assert!(
        t.site != "panic-in-key",
        "injected panic in a partition key"
    );
    t.site.clone()
}

fn touch(t: Fragile) -> Outcome<Fragile> {
    assert!(
        t.id != "panic-in-function",
        "injected panic in the transform"
    );
    Outcome::Ok(t)
}

kpipe_runtime::pipeline! {
    pipeline Touchy {
        stream touchy: Fragile { capacity: provisioned(shards: 3), partition_key: id }
        transform touch: Fragile -> Fragile { function: crate::touch }
        s3 lake: Fragile {
            bucket: "acme-touchy",
            prefix: "site=!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |t: &Fragile| crate::site_key(t) },
        }
        delivery touchy_lake: touchy -> touch -> lake;
    }
}

fn touchy_records() -> Vec<Fragile> {
    let mut records: Vec<Fragile> = (0..40)
        .map(|i| Fragile {
            id: format!("t-{i}"),
            site: ["oslo", "lima"][i % 2].into(),
        })
        .collect();
    for (id, site) in [
        ("panic-on-encode", "oslo"),
        ("p-1", "panic-on-decode"),
        ("p-2", "panic-in-key"),
        ("panic-in-function", "lima"),
    ] {
        records.insert(
            7,
            Fragile {
                id: id.into(),
                site: site.into(),
            },
        );
    }
    records
}

/// Puts records as JSON bytes written by hand, so the producer's own encoding of `Fragile`
/// (which would panic) is not what is tested.
async fn put_touchy(engine: &kpipe_runtime::LocalEngine<Touchy>) {
    let p = engine.producer(Touchy::touchy()).unwrap();
    for t in touchy_records() {
        let json = format!(r#"{{"id":"{}","site":"{}"}}"#, t.id, t.site);
        p.put_bytes(&t.id, json.into_bytes())
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_panic_anywhere_in_user_code_fails_only_its_record_in_the_engine() {
    let store = Arc::new(InMemory::new());
    let engine = Touchy::local().store(store.clone()).start().unwrap();
    put_touchy(&engine).await;
    engine.flush().await.unwrap();
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert_eq!((d.received, d.delivered, d.failed), (44, 40, 4), "{report}");
    assert!(report.is_conserved());

    let mut messages = Vec::new();
    let mut list = store.list(None);
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        let body = store
            .get(&meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        if meta.location.as_ref().contains("errors/processing-failed/") {
            for line in body.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let doc: serde_json::Value = serde_json::from_slice(line).unwrap();
                messages.push(doc["errorMessage"].as_str().unwrap().to_owned());
            }
        }
    }
    messages.sort();
    assert_eq!(messages.len(), 4, "{messages:?}");
    let expect = [
        "decoding into `Fragile` panicked: injected panic in Deserialize",
        "output of type `Fragile` panicked while encoding: injected panic in Serialize",
        "partition key `site` panicked: injected panic in a partition key",
        "transform `touch` panicked: injected panic in the transform",
    ];
    for (m, e) in messages.iter().zip(expect) {
        assert!(m.starts_with(e), "{m:?} does not start with {e:?}");
    }
}

/// An invoker that panics on its first invocations, then runs the transform.
struct PanickyInvoker {
    inner: LocalInvoker,
    panics: AtomicI32,
}

impl Invoker for PanickyInvoker {
    fn invoke<'a>(&'a self, records: &'a [BatchRecord]) -> InvokeFuture<'a> {
        if self.panics.fetch_sub(1, Ordering::SeqCst) > 0 {
            panic!("injected panic in the invoker");
        }
        self.inner.invoke(records)
    }
}

#[tokio::test(start_paused = true)]
async fn an_invoker_that_panics_is_a_failed_invocation_and_retried() {
    let store = Arc::new(InMemory::new());
    let invoker = Arc::new(PanickyInvoker {
        inner: LocalInvoker::new(Arc::clone(Touchy::touchy_lake().processor())),
        panics: AtomicI32::new(2),
    });
    let engine = Touchy::local()
        .store(store.clone())
        .invoker("touch", invoker)
        .start()
        .unwrap();
    put_touchy(&engine).await;
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    let t = d.transform.as_ref().unwrap();
    assert_eq!((t.invocations, t.failed_invocations), (3, 2));
    assert_eq!((d.delivered, d.failed), (40, 4));
}
