//! `format: orc` in the local engine (feature `orc`): ORC files read back with orc-rust's
//! reader, errors for records that do not convert, and a clear refusal of nested columns.

use futures::StreamExt;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Flat {
    sensor_id: String,
    celsius: f64,
    humidity: Option<f32>,
    ok: bool,
    at_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Nested {
    sensor_id: String,
    tags: Vec<String>,
}

kpipe_runtime::pipeline! {
    pipeline Orc {
        stream flat: Flat { capacity: provisioned(shards: 1), partition_key: sensor_id }
        s3 lake: Flat {
            bucket: "acme-orc",
            format: orc(compression: zlib),
            table: { timestamps: [at_ms] },
        }
        delivery d: flat -> lake;
    }
    pipeline NestedOrc {
        stream nested: Nested { capacity: provisioned(shards: 1), partition_key: sensor_id }
        s3 lake: Nested { bucket: "acme-orc-nested", format: orc }
        delivery d: nested -> lake;
    }
}

#[tokio::test(start_paused = true)]
async fn orc_files_hold_every_record_with_its_values() {
    let store = Arc::new(InMemory::new());
    let engine = Orc::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Orc::flat()).unwrap();
    let rows: Vec<Flat> = (0..1000u32)
        .map(|i| Flat {
            sensor_id: format!("s-{i}"),
            celsius: f64::from(i) / 4.0,
            humidity: (i % 3 != 1).then_some(i as f32),
            ok: i.is_multiple_of(2),
            at_ms: 1_795_766_400_000 + i64::from(i),
        })
        .collect();
    for chunk in rows.chunks(500) {
        p.put_batch(chunk).await.unwrap();
    }
    let bad = br#"{"sensor_id":"x","celsius":"warm","ok":true,"at_ms":1}"#.to_vec();
    p.put_bytes("x", bad.clone()).await.unwrap().unwrap();
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert!(d.is_conserved(), "{report}");
    assert_eq!((d.delivered, d.failed), (1000, 1), "{report}");

    let mut list = store.list(None);
    let mut orc = Vec::new();
    let mut errors = Vec::new();
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        let body = object_store::ObjectStoreExt::get(&*store, &meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        if meta.location.as_ref().ends_with(".orc") {
            orc.push(body);
        } else {
            errors.push(String::from_utf8(body.to_vec()).unwrap());
        }
    }
    assert_eq!(orc.len(), 1);
    let reader = orc_rust::arrow_reader::ArrowReaderBuilder::try_new(orc.remove(0))
        .unwrap()
        .build();
    let mut seen: Vec<Flat> = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let ts = batch
            .column_by_name("at_ms")
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::TimestampNanosecondArray>()
            .map(|a| {
                a.values()
                    .iter()
                    .map(|ns| ns / 1_000_000)
                    .collect::<Vec<i64>>()
            })
            .or_else(|| {
                batch
                    .column_by_name("at_ms")
                    .unwrap()
                    .as_any()
                    .downcast_ref::<arrow_array::TimestampMillisecondArray>()
                    .map(|a| a.values().to_vec())
            })
            .expect("a timestamp column");
        let names: Vec<&str> = ["sensor_id", "celsius", "humidity", "ok"].to_vec();
        let columns: Vec<arrow_array::ArrayRef> = names
            .iter()
            .map(|n| Arc::clone(batch.column_by_name(n).unwrap()))
            .chain([Arc::new(arrow_array::Int64Array::from(ts)) as arrow_array::ArrayRef])
            .collect();
        let fields: Vec<arrow_schema::FieldRef> = names
            .iter()
            .map(|n| {
                let f = batch.schema().field_with_name(n).unwrap().clone();
                Arc::new(f)
            })
            .chain([Arc::new(arrow_schema::Field::new(
                "at_ms",
                arrow_schema::DataType::Int64,
                true,
            ))])
            .collect();
        let plain =
            arrow_array::RecordBatch::try_new(Arc::new(arrow_schema::Schema::new(fields)), columns)
                .unwrap();
        seen.extend(serde_arrow::from_record_batch::<Vec<Flat>>(&plain).unwrap());
    }
    seen.sort_by_key(|r| r.at_ms);
    assert_eq!(seen, rows);
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].contains("DataFormatConversion.MalformedData"),
        "{}",
        errors[0]
    );
}

#[test]
fn nested_columns_are_refused_at_start_with_the_column() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(async { NestedOrc::local().store(Arc::new(InMemory::new())).start() })
        .unwrap_err();
    assert!(
        err.to_string().contains("column `tags` is array<string>"),
        "{err}"
    );
}
