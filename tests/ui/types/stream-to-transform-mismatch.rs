use kpipe_tests::{Audit, Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline P {
        stream audits: Audit { capacity: on_demand, partition_key: actor }
        transform enrich: Reading -> Enriched { function: kpipe_tests::enrich }
        s3 lake: Enriched { bucket: "acme-lake" }
        delivery d: audits -> enrich -> lake;
    }
}

fn main() {}
