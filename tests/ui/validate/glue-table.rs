use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        s3 a: Reading {
            bucket: "acme-a",
            format: parquet,
            table: { database: "Sensor-Lake", name: "", owner: "me" },
        }
        s3 b: Reading {
            bucket: "acme-b",
            format: parquet,
            table: { timestamps: [observed_at, .site, 3] },
        }
        s3 c: Reading { bucket: "acme-c", format: parquet, table: { timestamps: observed_at } }
        delivery to_a: readings -> a;
        delivery to_b: readings -> b;
        delivery to_c: readings -> c;
    }
}

fn main() {}
