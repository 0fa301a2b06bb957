//! Property: whatever goes in (valid, dropped, failing, undecodable, panicking records, failed
//! invocations, many partitions, time passing), every run report satisfies
//! `received = delivered + dropped + failed`, and the objects hold exactly the delivered
//! records and one error document per failed record.

use futures::StreamExt;
use kpipe_runtime::Outcome;
use kpipe_runtime::engine::LocalInvoker;
use kpipe_runtime::firehose::{BatchRecord, InvocationError, InvokeFuture, Invoker};
use object_store::ObjectStore;
use object_store::memory::InMemory;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

#[derive(Clone, Debug, Serialize, Deserialize)]
struct In {
    id: String,
    site: String,
    value: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Out {
    site: String,
    value: i64,
}

fn transform(r: In) -> Outcome<Out> {
    match r.value {
        0 => Outcome::Dropped,
        1 => Outcome::failed("value 1 is invalid"),
        2 => panic!("value 2 panics"),
        v => Outcome::Ok(Out {
            site: r.site,
            value: v,
        }),
    }
}

kpipe_runtime::pipeline! {
    pipeline P {
        stream input: In { capacity: provisioned(shards: 3), partition_key: id }
        transform t: In -> Out { function: crate::transform, buffer: 0.2MB or 30s, retries: 2 }
        s3 out: Out {
            bucket: "acme-out",
            prefix: "site=!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            buffer: 1MiB or 120s,
            compression: gzip,
            partition_keys: { site: .site },
        }
        s3 raw: In { bucket: "acme-raw", buffer: 1MiB or 60s }
        delivery transformed: input -> t -> out;
        delivery untouched: input -> raw;
    }
}

#[derive(Clone, Debug)]
enum Event {
    Record { site: u16, value: i64 },
    Corrupt,
    Wait(u64),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (0u16..520, prop_oneof![Just(0i64), Just(1), Just(2), 3i64..1000])
            .prop_map(|(site, value)| Event::Record { site, value }),
        1 => Just(Event::Corrupt),
        1 => (0u64..200).prop_map(Event::Wait),
    ]
}

struct FailFirst {
    inner: LocalInvoker,
    failures: u32,
    calls: AtomicU32,
}

impl Invoker for FailFirst {
    fn invoke<'a>(&'a self, records: &'a [BatchRecord]) -> InvokeFuture<'a> {
        Box::pin(async move {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.failures {
                return Err(InvocationError::FunctionError("injected".into()));
            }
            self.inner.invoke(records).await
        })
    }
}

async fn lines(store: &InMemory, prefix: &str) -> (usize, usize) {
    let (mut data, mut errors) = (0, 0);
    let mut list = store.list(Some(&prefix.into()));
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        let key = meta.location.to_string();
        let body = object_store::ObjectStoreExt::get(store, &meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let raw = if key.ends_with(".gz") {
            kpipe_runtime::engine::decompress(&body, kpipe_runtime::spec::Compression::Gzip)
                .unwrap()
        } else {
            body.to_vec()
        };
        let n = raw.iter().filter(|b| **b == b'\n').count();
        if key.contains("/errors/")
            || key.contains("processing-failed")
            || key.contains("activePartitionExceeded")
        {
            errors += n;
        } else {
            data += n;
        }
    }
    (data, errors)
}

fn run(events: Vec<Event>, failures: u32) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(InMemory::new());
        let invoker = Arc::new(FailFirst {
            inner: LocalInvoker::new(P::transformed().processor().clone()),
            failures,
            calls: AtomicU32::new(0),
        });
        let engine = P::local()
            .store(store.clone())
            .seed(3)
            .invoker(P::t(), invoker)
            .start()
            .unwrap();
        let producer = engine.producer(P::input()).unwrap();
        let mut sent = 0u64;
        for (i, e) in events.iter().enumerate() {
            match e {
                Event::Record { site, value } => {
                    let r = In {
                        id: format!("id-{i}"),
                        site: format!("s{site}"),
                        value: *value,
                    };
                    producer.put(&r).await.unwrap().unwrap();
                    sent += 1;
                }
                Event::Corrupt => {
                    producer
                        .put_bytes(&format!("id-{i}"), &b"\xff not json"[..])
                        .await
                        .unwrap()
                        .unwrap();
                    sent += 1;
                }
                Event::Wait(secs) => {
                    tokio::time::advance(std::time::Duration::from_secs(*secs)).await
                }
            }
        }
        let report = engine.shutdown().await.unwrap();
        prop_assert!(report.is_conserved(), "{report}");
        for d in &report.deliveries {
            prop_assert_eq!(d.received, sent);
            prop_assert!(d.errors.is_empty(), "{:?}", d.errors);
            prop_assert_eq!(
                d.error_output.records,
                d.failed,
                "one error document per failed record"
            );
        }
        let (data, errors) = lines(&store, "acme-out").await;
        let t = &report.deliveries[0];
        prop_assert_eq!(data as u64, t.delivered);
        prop_assert_eq!(errors as u64, t.failed);
        let (raw, raw_errors) = lines(&store, "acme-raw").await;
        prop_assert_eq!(
            raw as u64,
            sent,
            "without a transform every record is delivered"
        );
        prop_assert_eq!(raw_errors, 0);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn every_record_is_accounted_for(events in proptest::collection::vec(event(), 0..700), failures in 0u32..5) {
        run(events, failures)?;
    }
}
