use kpipe_runtime::Outcome;
use kpipe_tests::Reading;

fn tidy(r: Reading) -> Outcome<Reading> {
    Outcome::Ok(r)
}

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        transform tidy: Reading -> Reading { function: crate::tidy }
        s3 lake: Reading { bucket: "acme-lake" }
        s3 raw: Reading { bucket: "acme-raw" }
        s3 fancy: Reading {
            bucket: "acme-fancy",
            prefix: "site=!{partitionKeyFromQuery:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: .site },
            time_zone: "Asia/Tokyo",
        }
        delivery no_transform: readings -> lake { s3_backup: raw }
        delivery itself: readings -> tidy -> lake { s3_backup: lake }
        delivery partitioned: readings -> tidy -> lake { s3_backup: fancy }
        delivery missing: readings -> tidy -> lake { s3_backup: rwa }
        delivery not_s3: readings -> tidy -> lake { s3_backup: tidy }
    }
}

fn main() {}
