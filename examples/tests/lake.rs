//! The Parquet lake example's pipeline on the local engine: every site gets Parquet objects,
//! and the readings the transform fails get error documents, on tokio's paused clock.

use kpipe_examples::lake::{Lake, sample_reading};
use kpipe_runtime::engine::object_store::memory::InMemory;
use std::sync::Arc;

#[tokio::test(start_paused = true)]
async fn the_lake_writes_parquet_per_site() {
    let store = Arc::new(InMemory::new());
    let engine = Lake::local().store(store.clone()).start().unwrap();
    let readings = engine.producer(Lake::readings()).unwrap();
    let batch: Vec<_> = (0..3000).map(sample_reading).collect();
    for chunk in batch.chunks(500) {
        readings.put_batch(chunk).await.unwrap();
    }
    let report = engine.shutdown().await.unwrap();
    assert!(report.is_conserved(), "{report}");
    let d = &report.deliveries[0];
    assert_eq!(d.received, 3000);
    assert!(d.delivered > 2800 && d.failed > 0, "{report}");
    // One object per site, each a Parquet file.
    assert_eq!(d.objects.len(), 6, "{:?}", d.objects);
    for key in &d.objects {
        assert!(
            key.starts_with("acme-lake/readings/site=") && key.ends_with(".parquet"),
            "{key}"
        );
    }
}

#[test]
fn the_table_is_the_enriched_type() {
    let c = Lake::spec().destinations[0].conversion.unwrap();
    let columns: Vec<String> = c
        .columns()
        .unwrap()
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.ty))
        .collect();
    assert_eq!(
        columns,
        [
            "sensor_id string",
            "site string",
            "fahrenheit double",
            "at_ms timestamp"
        ]
    );
}
