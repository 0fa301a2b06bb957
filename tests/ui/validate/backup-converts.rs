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
        s3 raw: Reading { bucket: "acme-raw", format: parquet }
        delivery to_lake: readings -> tidy -> lake { s3_backup: raw }
    }
}

fn main() {}
