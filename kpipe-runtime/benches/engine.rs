//! The local engine end to end against a minimal hand-written loop doing the same work, in
//! the same run: decode JSON readings of ~200 bytes, call a light transform, encode, buffer,
//! compress (gzip, or none), write the object. The producer puts with PutRecords calls of 500
//! (`engine`) or one PutRecord per record (`engine_put_record`). Target: the engine at or
//! below the loop's time, on two worker threads. Results go to BENCHMARKS.md.

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kpipe_runtime::Outcome;
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::sync::Arc;

const RECORDS: usize = 100_000;

#[derive(Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
    at_ms: u64,
    firmware: String,
    note: String,
}

#[derive(Serialize, Deserialize)]
struct Enriched {
    sensor_id: String,
    site: String,
    fahrenheit: f64,
    at_ms: u64,
    firmware: String,
    note: String,
}

fn enrich(r: Reading) -> Outcome<Enriched> {
    Outcome::Ok(Enriched {
        sensor_id: r.sensor_id,
        site: r.site,
        fahrenheit: r.celsius * 1.8 + 32.0,
        at_ms: r.at_ms,
        firmware: r.firmware,
        note: r.note,
    })
}

kpipe_runtime::pipeline! {
    pipeline Gzip {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich, buffer: 3MiB or 900s }
        s3 lake: Enriched { bucket: "bench-gzip", buffer: 64MiB or 900s, compression: gzip }
        delivery d: readings -> enrich -> lake;
    }
    pipeline Plain {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: crate::enrich, buffer: 3MiB or 900s }
        s3 lake: Enriched { bucket: "bench-plain", buffer: 64MiB or 900s }
        delivery d: readings -> enrich -> lake;
    }
}

fn inputs() -> Vec<(String, bytes::Bytes)> {
    (0..RECORDS)
        .map(|i| {
            let r = Reading {
                sensor_id: format!("sensor-{:05}", i % 5000),
                site: ["berlin", "oslo", "lisbon"][i % 3].to_owned(),
                celsius: (i % 400) as f64 / 10.0,
                at_ms: 1_795_766_400_000 + i as u64,
                firmware: "v2.14.7-stable".to_owned(),
                note: "calibrated 2026-10-01 by the field team; housing sealed, battery ok"
                    .to_owned(),
            };
            (
                r.sensor_id.clone(),
                bytes::Bytes::from(serde_json::to_vec(&r).unwrap()),
            )
        })
        .collect()
}

/// The baseline: the same work without the engine.
async fn hand_loop(inputs: &[(String, bytes::Bytes)], gzip: bool, store: &InMemory) {
    const FLUSH: usize = 64 * 1024 * 1024;
    let mut buffer = Vec::with_capacity(FLUSH);
    let mut n = 0;
    for (_, bytes) in inputs {
        let r: Reading = serde_json::from_slice(bytes).unwrap();
        if let Outcome::Ok(e) = enrich(r) {
            serde_json::to_writer(&mut buffer, &e).unwrap();
            buffer.push(b'\n');
        }
        if buffer.len() >= FLUSH {
            write(store, &mut buffer, gzip, &mut n).await;
        }
    }
    write(store, &mut buffer, gzip, &mut n).await;
}

async fn write(store: &InMemory, buffer: &mut Vec<u8>, gzip: bool, n: &mut usize) {
    let body = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(buffer).unwrap();
        enc.finish().unwrap()
    } else {
        std::mem::take(buffer)
    };
    *n += 1;
    store
        .put(&format!("hand/{n}").into(), PutPayload::from(body))
        .await
        .unwrap();
    buffer.clear();
}

/// How the producer puts the records.
#[derive(Clone, Copy)]
enum Puts {
    /// One PutRecord call per record.
    One,
    /// PutRecords calls of 500 entries, the most Kinesis takes.
    Batches,
}

async fn engine<P: kpipe_runtime::Pipeline>(
    inputs: &[(String, bytes::Bytes)],
    stream: kpipe_runtime::StreamDef<Reading>,
    puts: Puts,
) {
    let engine = kpipe_runtime::LocalBuilder::<P>::new()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let producer = engine.producer(stream).unwrap();
    match puts {
        Puts::One => {
            for (key, bytes) in inputs {
                producer
                    .put_bytes(key, bytes.clone())
                    .await
                    .unwrap()
                    .unwrap();
            }
        }
        Puts::Batches => {
            for batch in inputs.chunks(500) {
                let out = producer
                    .put_batch_bytes(batch.iter().cloned())
                    .await
                    .unwrap();
                assert_eq!(out.failed_record_count, 0);
            }
        }
    }
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.deliveries[0].delivered, RECORDS as u64);
}

fn bench(c: &mut Criterion) {
    let inputs = inputs();
    let bytes: usize = inputs.iter().map(|(_, b)| b.len()).sum();
    println!("{RECORDS} records of {} bytes on average", bytes / RECORDS);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("engine_vs_hand_loop");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS as u64));
    for (name, gzip) in [("gzip", true), ("uncompressed", false)] {
        g.bench_with_input(BenchmarkId::new("hand_loop", name), &gzip, |b, &gzip| {
            b.to_async(&rt).iter(|| async {
                let store = InMemory::new();
                hand_loop(&inputs, gzip, &store).await;
            })
        });
        for (puts, label) in [(Puts::Batches, "engine"), (Puts::One, "engine_put_record")] {
            g.bench_with_input(BenchmarkId::new(label, name), &gzip, |b, &gzip| {
                b.to_async(&rt).iter(|| async {
                    if gzip {
                        engine::<Gzip>(&inputs, Gzip::readings(), puts).await;
                    } else {
                        engine::<Plain>(&inputs, Plain::readings(), puts).await;
                    }
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
