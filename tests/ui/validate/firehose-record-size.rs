use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
pub struct Reading {
    pub sensor_id: String,
}

kpipe_runtime::pipeline! {
    pipeline Large {
        stream big: Reading {
            capacity: provisioned(shards: 1),
            partition_key: sensor_id,
            max_record_size: 4MiB,
        }
        s3 lake: Reading { bucket: "acme-lake" }
        delivery keep: big -> lake;
    }
}

fn main() {}
