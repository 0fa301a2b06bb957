use kpipe_tests::Enriched;

kpipe_runtime::pipeline! {
    pipeline P {
        stream enriched: Enriched { capacity: on_demand, partition_key: sensor_id, encryption: kms("") }
        s3 lake: Enriched { bucket: "acme-lake" }
        delivery d: enriched -> lake { role_arn: "firehose-role" }
    }
}

fn main() {}
