//! `format: parquet` through the local engine against a hand-written loop that decodes the
//! same JSON and writes the same Parquet with arrow-rs directly, in the same run: 1,000,000
//! readings of ~190 bytes, Snappy, row groups of 65,536 rows, one object per 128 MiB of JSON.
//! Target: the engine at most 1.3x the loop. Results go to BENCHMARKS.md.
//!
//! `cargo bench -p kpipe-runtime --features parquet --bench parquet -- --memory` instead puts
//! the readings on 500 dynamic partitions and prints the process's peak RSS (run it alone:
//! the peak is the process's, so it is measured in a process of its own).

// criterion_group! generates an undocumented `pub fn benches`.
#![allow(missing_docs)]

use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow_array::{ArrayRef, RecordBatch};
use criterion::{BenchmarkId, Criterion, Throughput};
use object_store::memory::InMemory;
use object_store::{ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

const RECORDS: usize = 1_000_000;
const ROW_GROUP: usize = 64 * 1024;
const FLUSH: usize = 128 * 1024 * 1024;

#[derive(Serialize, Deserialize)]
struct Reading {
    sensor_id: String,
    site: String,
    celsius: f64,
    at_ms: i64,
    firmware: String,
    note: String,
}

kpipe_runtime::pipeline! {
    pipeline Lake {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        s3 lake: Reading {
            bucket: "bench-parquet",
            buffer: 128MiB or 900s,
            format: parquet,
            table: { timestamps: [at_ms] },
        }
        delivery d: readings -> lake;
    }
    pipeline Partitioned {
        stream readings: Reading { capacity: provisioned(shards: 2), partition_key: sensor_id }
        s3 lake: Reading {
            bucket: "bench-partitioned",
            prefix: "sensor=!{partitionKeyFromQuery:sensor}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            buffer: 128MiB or 900s,
            partition_keys: { sensor: .sensor_id },
            format: parquet,
            table: { timestamps: [at_ms] },
        }
        delivery d: readings -> lake;
    }
}

fn reading(i: usize, sensors: usize) -> (String, bytes::Bytes) {
    let r = Reading {
        sensor_id: format!("sensor-{:05}", i % sensors),
        site: ["berlin", "oslo", "lisbon"][i % 3].to_owned(),
        celsius: (i % 400) as f64 / 10.0,
        at_ms: 1_795_766_400_000 + i as i64,
        firmware: "v2.14.7-stable".to_owned(),
        note: "calibrated 2026-10-01 by the field team; housing sealed, battery ok".to_owned(),
    };
    (
        r.sensor_id.clone(),
        bytes::Bytes::from(serde_json::to_vec(&r).unwrap()),
    )
}

/// The baseline: decode each reading, append it to typed Arrow builders, write row groups of
/// 65,536 rows to a Snappy Parquet file, and store a file per 128 MiB of JSON.
async fn hand_loop(inputs: &[(String, bytes::Bytes)], store: &InMemory) {
    let schema = Lake::spec().destinations[0]
        .conversion
        .unwrap()
        .columns()
        .unwrap()
        .to_arrow();
    let schema = Arc::new(schema);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP))
        .build();
    let new_writer =
        || ArrowWriter::try_new(Vec::new(), Arc::clone(&schema), Some(props.clone())).unwrap();
    let mut writer = new_writer();
    let mut cols = Columns::new();
    let (mut rows, mut json_bytes, mut files) = (0, 0, 0);
    for (_, bytes) in inputs {
        let r: Reading = serde_json::from_slice(bytes).unwrap();
        cols.append(&r);
        rows += 1;
        json_bytes += bytes.len();
        let file_full = json_bytes >= FLUSH;
        if rows == ROW_GROUP || file_full {
            writer.write(&cols.finish(&schema)).unwrap();
            writer.flush().unwrap();
            rows = 0;
        }
        if file_full {
            let done = std::mem::replace(&mut writer, new_writer());
            put(store, done, &mut files).await;
            json_bytes = 0;
        }
    }
    if rows > 0 {
        writer.write(&cols.finish(&schema)).unwrap();
    }
    put(store, writer, &mut files).await;
}

/// The hand loop's typed column builders.
struct Columns {
    id: StringBuilder,
    site: StringBuilder,
    celsius: Float64Builder,
    at: TimestampMillisecondBuilder,
    firmware: StringBuilder,
    note: StringBuilder,
}

impl Columns {
    fn new() -> Self {
        Columns {
            id: StringBuilder::new(),
            site: StringBuilder::new(),
            celsius: Float64Builder::new(),
            at: TimestampMillisecondBuilder::new().with_timezone("UTC"),
            firmware: StringBuilder::new(),
            note: StringBuilder::new(),
        }
    }

    fn append(&mut self, r: &Reading) {
        self.id.append_value(&r.sensor_id);
        self.site.append_value(&r.site);
        self.celsius.append_value(r.celsius);
        self.at.append_value(r.at_ms);
        self.firmware.append_value(&r.firmware);
        self.note.append_value(&r.note);
    }

    fn finish(&mut self, schema: &Arc<arrow_schema::Schema>) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.id.finish()),
            Arc::new(self.site.finish()),
            Arc::new(self.celsius.finish()),
            Arc::new(self.at.finish()),
            Arc::new(self.firmware.finish()),
            Arc::new(self.note.finish()),
        ];
        RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
    }
}

async fn put(store: &InMemory, writer: ArrowWriter<Vec<u8>>, n: &mut usize) {
    let body = writer.into_inner().unwrap();
    *n += 1;
    store
        .put(&format!("hand/{n}.parquet").into(), PutPayload::from(body))
        .await
        .unwrap();
}

async fn engine<P: kpipe_runtime::Pipeline>(
    inputs: &[(String, bytes::Bytes)],
    stream: kpipe_runtime::StreamDef<Reading>,
) -> kpipe_runtime::RunReport {
    let engine = kpipe_runtime::LocalBuilder::<P>::new()
        .store(Arc::new(InMemory::new()))
        .start()
        .unwrap();
    let producer = engine.producer(stream).unwrap();
    for chunk in inputs.chunks(500) {
        let out = producer
            .put_batch_bytes(chunk.iter().cloned())
            .await
            .unwrap();
        assert_eq!(out.failed_record_count, 0);
    }
    let report = engine.shutdown().await.unwrap();
    assert_eq!(report.deliveries[0].delivered, inputs.len() as u64);
    report
}

/// Peak resident memory of this process, from `/proc/self/status` (Linux).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if std::env::args().any(|a| a == "--memory") {
        // Readings are made 500 at a time, so the peak is the engine's.
        let start = std::time::Instant::now();
        let (report, bytes) = rt.block_on(async {
            let engine = kpipe_runtime::LocalBuilder::<Partitioned>::new()
                .store(Arc::new(InMemory::new()))
                .start()
                .unwrap();
            let producer = engine.producer(Partitioned::readings()).unwrap();
            let mut bytes = 0;
            for first in (0..RECORDS).step_by(500) {
                let chunk: Vec<_> = (first..first + 500).map(|i| reading(i, 500)).collect();
                bytes += chunk.iter().map(|(_, b)| b.len()).sum::<usize>();
                producer.put_batch_bytes(chunk).await.unwrap();
            }
            (engine.shutdown().await.unwrap(), bytes)
        });
        assert_eq!(report.deliveries[0].delivered, RECORDS as u64);
        println!(
            "{RECORDS} readings ({:.1} MiB of JSON) on 500 partitions in {:.2?}: {} Parquet objects; peak RSS {:.1} MiB",
            bytes as f64 / 1048576.0,
            start.elapsed(),
            report.deliveries[0].objects.len(),
            peak_rss_mib(),
        );
        return;
    }
    let inputs: Vec<_> = (0..RECORDS).map(|i| reading(i, 5000)).collect();
    let bytes: usize = inputs.iter().map(|(_, b)| b.len()).sum();
    println!("{RECORDS} records of {} bytes on average", bytes / RECORDS);
    let mut c = Criterion::default().configure_from_args();
    let mut g = c.benchmark_group("parquet_engine_vs_hand_loop");
    g.sample_size(10);
    g.throughput(Throughput::Elements(RECORDS as u64));
    g.bench_function(BenchmarkId::new("hand_loop", "snappy"), |b| {
        b.to_async(&rt).iter(|| async {
            let store = InMemory::new();
            hand_loop(&inputs, &store).await;
        })
    });
    g.bench_function(BenchmarkId::new("engine", "snappy"), |b| {
        b.to_async(&rt)
            .iter(|| async { engine::<Lake>(&inputs, Lake::readings()).await })
    });
    g.finish();
    c.final_summary();
}
