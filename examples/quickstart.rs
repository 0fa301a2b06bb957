//! The quickstart: the sensor-telemetry pipeline of the README.
//!
//! Until the local engine lands, this prints the pipeline's spec and pushes a few readings
//! through the delivery's record processor (the Firehose -> Lambda contract), showing what
//! becomes of valid, test-rig and implausible readings.

use kpipe_examples::telemetry::{Reading, Telemetry};
use kpipe_runtime::{Pipeline, RecordResult};

fn main() {
    let spec = Telemetry::spec();
    println!("pipeline {}: {}", spec.name, spec.doc);
    for s in spec.streams {
        println!(
            "  stream     {:<16} {:?}, retention {} h",
            s.name, s.capacity, s.retention_hours
        );
    }
    for t in spec.transforms {
        println!(
            "  transform  {:<16} {} -> {} via {} (buffer {} B or {} s, {} retries)",
            t.id,
            t.input_type,
            t.output_type,
            t.function,
            t.buffer.size_bytes,
            t.buffer.interval_secs,
            t.retries
        );
    }
    for d in spec.destinations {
        let prefix = d.prefix.map_or("yyyy/MM/dd/HH/ (default)", |p| p.raw);
        println!(
            "  s3         {:<16} s3://{}/{prefix} ({:?})",
            d.id, d.bucket, d.compression
        );
    }
    for d in spec.deliveries {
        println!(
            "  delivery   {:<16} {:?} -> {:?} -> {}",
            d.name, d.source, d.transform, d.destination
        );
    }

    println!("\nrecords through delivery `sensor-lake`:");
    let delivery = &Telemetry::deliveries()[0];
    let readings = [
        Reading {
            sensor_id: "s-1".into(),
            site: "berlin".into(),
            celsius: 21.5,
            at_ms: 1_764_000_000_000,
        },
        Reading {
            sensor_id: "test-7".into(),
            site: "lab".into(),
            celsius: 20.0,
            at_ms: 1_764_000_000_500,
        },
        Reading {
            sensor_id: "s-2".into(),
            site: "oslo".into(),
            celsius: -300.0,
            at_ms: 1_764_000_001_000,
        },
    ];
    let mut inputs: Vec<Vec<u8>> = readings
        .iter()
        .map(|r| serde_json::to_vec(r).expect("readings encode"))
        .collect();
    inputs.push(b"{not json".to_vec());
    for input in inputs {
        let result = match delivery.processor().process(&input) {
            kpipe_runtime::Processing::Ready(r) => r,
            kpipe_runtime::Processing::Pending(_) => unreachable!("enrich is synchronous"),
        };
        let shown = String::from_utf8_lossy(&input);
        match result {
            RecordResult::Ok {
                data,
                partition_keys,
            } => {
                println!(
                    "  Ok               {shown}\n    -> {} {partition_keys:?}",
                    String::from_utf8_lossy(&data).trim_end()
                )
            }
            RecordResult::Dropped => println!("  Dropped          {shown}"),
            RecordResult::Failed(m) => println!("  ProcessingFailed {shown}\n    -> {m}"),
        }
    }
    println!(
        "\nthe spec as JSON: {} bytes (Telemetry::spec().to_json())",
        spec.to_json().len()
    );
}
