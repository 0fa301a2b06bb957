//! The test of docs/guide.md, "Test it with the paused clock": the quickstart's pipeline on
//! tokio's paused clock and an in-memory store, checked record by record.

// --- guide: begin
use kpipe_examples::telemetry::{Reading, Telemetry};
use kpipe_runtime::engine::decompress;
use kpipe_runtime::engine::object_store::{ObjectStoreExt, memory::InMemory};
use kpipe_runtime::spec::Compression;
use std::sync::Arc;

fn reading(sensor_id: &str, site: &str, celsius: f64) -> Reading {
    Reading {
        sensor_id: sensor_id.into(),
        site: site.into(),
        celsius,
        at_ms: 0,
    }
}

// Paused: the engine's buffer intervals (60 s into the transform, 300 s into S3) pass
// instantly and the same every run, so the test neither sleeps nor flakes.
#[tokio::test(start_paused = true)]
async fn readings_land_in_their_site_folder_as_fahrenheit() {
    let store = Arc::new(InMemory::new());
    let engine = Telemetry::local()
        .store(store.clone())
        .start_time_ms(1_767_225_600_000) // 2026-01-01T00:00:00Z
        .start()
        .unwrap();
    let readings = engine.producer(Telemetry::readings()).unwrap();
    readings
        .put_batch(&[
            reading("s-001", "oslo", 20.0),
            reading("test-7", "oslo", 20.0),  // a test rig: dropped
            reading("s-002", "oslo", -300.0), // below absolute zero: failed
        ])
        .await
        .unwrap();
    let report = engine.shutdown().await.unwrap();

    let lake = &report.deliveries[0];
    assert_eq!((lake.delivered, lake.dropped, lake.failed), (1, 1, 1));
    assert!(report.is_conserved());

    let key = &lake.objects[0];
    assert!(key.starts_with("acme-telemetry/raw/site=oslo/2026/01/01/00/sensor-lake-"));
    // One store for every bucket: keys are `bucket/key` (`store_per_bucket` maps buckets).
    let gz = store
        .get(&key.as_str().into())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let text = String::from_utf8(decompress(&gz, Compression::Gzip).unwrap()).unwrap();
    assert_eq!(
        text,
        "{\"sensor_id\":\"s-001\",\"site\":\"oslo\",\"fahrenheit\":68.0,\"at_ms\":0}\n"
    );
    assert!(lake.error_objects[0].contains("/errors/processing-failed/2026/01/01/"));
}
// --- guide: end
