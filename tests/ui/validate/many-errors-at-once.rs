use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: provisioned(shards: 0), partition_key: sensor_id, retention: 12h }
        transform enrich: Reading -> Enriched { function: kpipe_tests::enrich }
        s3 lake: Enriched { bucket: "Acme", buffer: 500MiB or 300s, compresion: gzip }
        delivery sensor_lake: readings -> enrich -> lake;
    }
}

// The pipeline's items still exist while the declaration has errors, so code that uses
// them reports nothing more.
fn main() {
    let _spec = P::spec();
    let _stream = P::readings();
    let _delivery = P::sensor_lake;
}
