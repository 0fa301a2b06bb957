//! `format: parquet` in the local engine: the files read back with the `parquet` crate's
//! reader, the schema derived from the record type, and `format-conversion-failed` error
//! documents for records that do not convert.

use base64::Engine as _;
use futures::StreamExt;
use kpipe_runtime::Pipeline;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Quality {
    Good,
    Suspect,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Probe {
    model: String,
    depth_cm: Option<u16>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Row {
    sensor_id: String,
    site: String,
    celsius: f64,
    count: u64,
    humidity: Option<f32>,
    quality: Quality,
    tags: Vec<String>,
    probe: Probe,
    labels: BTreeMap<String, i32>,
    observed_at: i64,
}

kpipe_runtime::pipeline! {
    pipeline Lake {
        region: "eu-west-1",
        stream rows: Row { capacity: provisioned(shards: 2), partition_key: sensor_id }
        s3 lake: Row {
            bucket: "acme-lake",
            prefix: "rows/site=!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: .site },
            format: parquet(compression: gzip),
            table: { database: "telemetry", timestamps: [observed_at] },
        }
        delivery put: rows -> lake;
    }
}

fn row(i: u64) -> Row {
    Row {
        sensor_id: format!("s-{i}"),
        site: ["oslo", "lima"][(i % 2) as usize].to_owned(),
        celsius: i as f64 / 4.0,
        count: i,
        humidity: (!i.is_multiple_of(3)).then_some(i as f32 / 10.0),
        quality: if i.is_multiple_of(5) {
            Quality::Suspect
        } else {
            Quality::Good
        },
        tags: (0..i % 3).map(|t| format!("t{t}")).collect(),
        probe: Probe {
            model: format!("m{}", i % 4),
            depth_cm: i.is_multiple_of(2).then_some(i as u16),
        },
        labels: (0..i % 2).map(|l| (format!("k{l}"), l as i32)).collect(),
        observed_at: 1_795_766_400_000 + i as i64,
    }
}

async fn objects(store: &InMemory) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut list = store.list(None);
    while let Some(meta) = list.next().await {
        let meta = meta.unwrap();
        let bytes = object_store::ObjectStoreExt::get(store, &meta.location)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        out.push((meta.location.to_string(), bytes.to_vec()));
    }
    out.sort();
    out
}

#[test]
fn the_columns_come_from_the_type() {
    let c = Lake::SPEC.destinations[0].conversion.unwrap();
    assert_eq!((c.table.database, c.table.name), ("telemetry", "lake"));
    let cols: Vec<(String, String)> = c
        .columns()
        .unwrap()
        .columns
        .into_iter()
        .map(|c| (c.name, c.ty.to_string()))
        .collect();
    let expected = [
        ("sensor_id", "string"),
        ("site", "string"),
        ("celsius", "double"),
        ("count", "bigint"),
        ("humidity", "float"),
        ("quality", "string"),
        ("tags", "array<string>"),
        ("probe", "struct<model:string,depth_cm:int>"),
        ("labels", "map<string,int>"),
        ("observed_at", "timestamp"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect();
    assert_eq!(cols, expected);
    // The spec's JSON (`spec` command) shows the columns as the table has them.
    let json: serde_json::Value = serde_json::from_str(&Lake::SPEC.to_json()).unwrap();
    let cols = &json["destinations"][0]["conversion"]["columns"];
    assert_eq!(
        cols[9],
        serde_json::json!({ "name": "observed_at", "type": "timestamp" })
    );
    // The default file extension and buffer of a Parquet destination.
    let s3 = &Lake::SPEC.destinations[0];
    assert_eq!(s3.buffer.size_bytes, 128 * 1024 * 1024);
}

#[tokio::test(start_paused = true)]
async fn parquet_files_hold_every_record_once_and_errors_name_the_table() {
    let store = Arc::new(InMemory::new());
    let engine = Lake::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Lake::rows()).unwrap();
    let rows: Vec<Row> = (0..1000).map(row).collect();
    for chunk in rows.chunks(500) {
        p.put_batch(chunk).await.unwrap();
    }
    // Not JSON: the partition key cannot be read, so `processing-failed` (before conversion).
    p.put_bytes("bad", b"{not json".to_vec())
        .await
        .unwrap()
        .unwrap();
    // Records that do not convert: a field of the wrong type, and a u64 over bigint's range
    // (which fails after part of the row was appended).
    let bad = [
        br#"{"sensor_id":"x","site":"oslo","celsius":"warm"}"#.to_vec(),
        serde_json::to_vec(&Row {
            count: u64::MAX,
            ..row(7)
        })
        .unwrap(),
    ];
    for b in &bad {
        p.put_bytes("bad", b.clone()).await.unwrap().unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert!(d.is_conserved(), "{report}");
    assert_eq!(
        (d.received, d.delivered, d.failed),
        (1003, 1000, 3),
        "{report}"
    );
    assert_eq!(d.destination.failed, 3, "{report}");

    let objects = objects(&store).await;
    let schema = Lake::SPEC.destinations[0]
        .conversion
        .unwrap()
        .columns()
        .unwrap()
        .to_arrow();
    let mut seen: Vec<Row> = Vec::new();
    let mut files = 0;
    for (key, body) in objects.iter().filter(|(k, _)| k.contains("/rows/")) {
        assert!(key.ends_with(".parquet"), "{key}");
        let site = if key.contains("site=oslo") {
            "oslo"
        } else {
            "lima"
        };
        files += 1;
        let reader =
            ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body.clone())).unwrap();
        let file_schema = reader.schema().clone();
        assert_eq!(file_schema.fields(), schema.fields(), "{key}");
        for batch in reader.build().unwrap() {
            let batch = batch.unwrap();
            // The timestamp column holds the epoch milliseconds; read it back as i64.
            let ts = batch
                .column_by_name("observed_at")
                .unwrap()
                .as_any()
                .downcast_ref::<arrow_array::TimestampMillisecondArray>()
                .unwrap()
                .clone();
            let humidity = batch.column_by_name("humidity").unwrap();
            let mut fields = schema.fields().to_vec();
            fields[9] = Arc::new(arrow_schema::Field::new(
                "observed_at",
                arrow_schema::DataType::Int64,
                true,
            ));
            let mut columns = batch.columns().to_vec();
            columns[9] = Arc::new(arrow_array::Int64Array::from(ts.values().to_vec()));
            let plain = arrow_array::RecordBatch::try_new(
                Arc::new(arrow_schema::Schema::new(fields)),
                columns,
            )
            .unwrap();
            let back: Vec<Row> = serde_arrow::from_record_batch(&plain).unwrap();
            for (i, r) in back.iter().enumerate() {
                assert_eq!(r.site, site, "{key}");
                // Nulls where the Option was None.
                assert_eq!(humidity.is_null(i), r.humidity.is_none());
            }
            seen.extend(back);
        }
    }
    assert_eq!(files, 2, "one object per partition");
    seen.sort_by_key(|r| r.count);
    assert_eq!(
        seen, rows,
        "every delivered record exactly once, with its values"
    );

    let errors: Vec<&(String, Vec<u8>)> = objects
        .iter()
        .filter(|(k, _)| k.contains("errors/format-conversion-failed/"))
        .collect();
    assert_eq!(errors.len(), 1, "{objects:?}");
    let docs: Vec<serde_json::Value> = errors[0]
        .1
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(docs.len(), 2);
    let mut raws: Vec<Vec<u8>> = Vec::new();
    for doc in &docs {
        assert_eq!(doc["lastErrorCode"], "DataFormatConversion.MalformedData");
        assert!(doc["lastErrorMessage"].as_str().unwrap().len() > 3, "{doc}");
        assert_eq!(doc["attemptsMade"], 1);
        assert!(doc["arrivalTimestamp"].is_i64());
        let table = &doc["dataCatalogTable"];
        assert_eq!(table["databaseName"], "telemetry");
        assert_eq!(table["tableName"], "lake");
        assert_eq!(table["region"], "eu-west-1");
        assert_eq!(
            table["catalogArn"],
            "arn:aws:glue:eu-west-1:000000000000:catalog"
        );
        raws.push(
            base64::engine::general_purpose::STANDARD
                .decode(doc["rawData"].as_str().unwrap())
                .unwrap(),
        );
    }
    raws.sort();
    let mut bad = bad.to_vec();
    bad.sort();
    assert_eq!(raws, bad);
}

#[test]
fn a_type_without_columns_names_its_field() {
    #[derive(Serialize, Deserialize)]
    enum Shape {
        Circle(f64),
        Square { side: f64 },
    }
    #[derive(Serialize, Deserialize)]
    struct Bad {
        id: String,
        shape: Shape,
    }
    let err = kpipe_runtime::__private::schema_of::<Bad>(&[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("field `shape` of `Bad` cannot be a Glue column: an enum with data"),
        "{err}"
    );
    let err = kpipe_runtime::__private::schema_of::<Row>(&["seen_at"]).unwrap_err();
    assert!(err.to_string().contains("`seen_at`"), "{err}");
    let err = kpipe_runtime::__private::schema_of::<Row>(&["celsius"]).unwrap_err();
    assert!(
        err.to_string().contains("a timestamp is an integer"),
        "{err}"
    );
    let err = kpipe_runtime::__private::schema_of::<Vec<u32>>(&[]).unwrap_err();
    assert!(err.to_string().contains("is a struct"), "{err}");
    #[derive(Serialize, Deserialize)]
    struct Flattened {
        id: String,
        #[serde(flatten)]
        probe: Probe,
    }
    let err = kpipe_runtime::__private::schema_of::<Flattened>(&[]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("`Flattened` has no Glue columns: ")
            && err.to_string().contains("without `#[serde(flatten)]`"),
        "{err}"
    );
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Tick {
    n: u32,
    id: String,
}

kpipe_runtime::pipeline! {
    pipeline Ticks {
        stream ticks: Tick { capacity: provisioned(shards: 1), partition_key: id }
        s3 out: Tick { bucket: "acme-ticks", format: parquet(compression: uncompressed) }
        delivery d: ticks -> out;
    }
}

/// More records than a row group: full groups are built while records keep coming, and a
/// record that does not convert in one of them is left out of that group alone.
#[tokio::test(start_paused = true)]
async fn buffers_larger_than_a_row_group_keep_every_record_in_order() {
    const N: u32 = 150_000;
    let store = Arc::new(InMemory::new());
    let engine = Ticks::local().store(store.clone()).start().unwrap();
    let p = engine.producer(Ticks::ticks()).unwrap();
    let mut batch = Vec::new();
    for n in 0..N {
        if n == 70_000 {
            // In the second row group: `n` does not fit a u32.
            let bad = br#"{"n":-1,"id":"t"}"#.to_vec();
            p.put_batch_bytes([("t".to_owned(), bytes::Bytes::from(bad))])
                .await
                .unwrap();
        }
        batch.push(Tick {
            n,
            id: "t".to_owned(),
        });
        if batch.len() == 500 {
            p.put_batch(&batch).await.unwrap();
            batch.clear();
        }
    }
    let report = engine.shutdown().await.unwrap();
    let d = &report.deliveries[0];
    assert!(d.is_conserved(), "{report}");
    assert_eq!((d.delivered, d.failed), (u64::from(N), 1), "{report}");
    let objects = objects(&store).await;
    let (_, body) = objects
        .iter()
        .find(|(k, _)| k.ends_with(".parquet"))
        .expect("one Parquet object");
    let reader =
        ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(body.clone())).unwrap();
    assert_eq!(reader.metadata().num_row_groups(), 3);
    let mut seen = Vec::new();
    for batch in reader.build().unwrap() {
        let ticks: Vec<Tick> = serde_arrow::from_record_batch(&batch.unwrap()).unwrap();
        seen.extend(ticks.into_iter().map(|t| t.n));
    }
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
}

#[derive(Clone, Debug, Serialize, Deserialize)]
enum Shape {
    Circle(f64),
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Drawing {
    id: String,
    shape: Shape,
}

kpipe_runtime::pipeline! {
    pipeline Drawings {
        stream drawings: Drawing { capacity: on_demand, partition_key: id }
        s3 out: Drawing { bucket: "acme-drawings", format: parquet }
        delivery d: drawings -> out;
    }
}

/// A type without Glue columns stops `check` (what synth, plan and apply run first) and the
/// engine's start, naming the field.
#[test]
fn a_type_without_columns_stops_check_and_the_engine() {
    let err = Drawings::spec().check().unwrap_err();
    assert!(
        err.to_string()
            .contains("s3 destination `out`: field `shape` of `Drawing` cannot be a Glue column"),
        "{err}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let err = rt
        .block_on(async { Drawings::local().store(Arc::new(InMemory::new())).start() })
        .unwrap_err();
    assert!(err.to_string().contains("field `shape`"), "{err}");
}
