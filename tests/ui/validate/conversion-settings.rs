use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        s3 a: Reading { bucket: "acme-a", format: parquet(compression: zstd) }
        s3 b: Reading { bucket: "acme-b", format: parquet(page_size: 1KiB, block_size: 1MiB, writer_version: v3) }
        s3 c: Reading { bucket: "acme-c", format: orc(stripe_size: 1MiB, bloom: true) }
        s3 d: Reading { bucket: "acme-d", format: parket }
        s3 e: Reading { bucket: "acme-e", table: { name: "readings" } }
        delivery to_a: readings -> a;
        delivery to_b: readings -> b;
        delivery to_c: readings -> c;
        delivery to_d: readings -> d;
        delivery to_e: readings -> e;
    }
}

fn main() {}
