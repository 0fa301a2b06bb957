use kpipe_tests::{Audit, Enriched};

kpipe_runtime::pipeline! {
    pipeline P {
        stream audits: Audit { capacity: on_demand, partition_key: actor }
        s3 lake: Enriched { bucket: "acme-lake" }
        delivery d: audits -> lake;
    }
}

fn main() {}
