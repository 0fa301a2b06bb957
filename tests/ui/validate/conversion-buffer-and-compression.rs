use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        s3 small: Reading { bucket: "acme-small", format: parquet, buffer: 5MiB or 60s }
        s3 gzipped: Reading { bucket: "acme-gzipped", format: orc, compression: gzip }
        delivery to_small: readings -> small;
        delivery to_gzipped: readings -> gzipped;
    }
}

fn main() {}
