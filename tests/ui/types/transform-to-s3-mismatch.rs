use kpipe_tests::{Audit, Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: kpipe_tests::enrich }
        s3 audit_lake: Audit { bucket: "acme-audit" }
        delivery d: readings -> enrich -> audit_lake;
    }
}

fn main() {}
