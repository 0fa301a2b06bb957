use kpipe_tests::Reading;

fn alert(_r: Reading) {}

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        s3 lake: Reading { bucket: "acme-lake" }
        consumer no_position: readings -> alert { batch_size: 100 }
        consumer too_big: readings -> alert {
            starting_position: trim_horizon,
            batch_size: 20000,
            maximum_retries: 10001,
            maximum_record_age: 30s,
            batch_window: 10min,
            parallelization: 11,
            lambda: { timeout: 20min },
        }
        consumer typo: readings -> alert { starting_position: earliest }
        consumer bad_time: readings -> alert { starting_position: at_timestamp("yesterday") }
        consumer from_s3: lake -> alert { starting_position: latest }
        consumer unknown: reading -> alert { starting_position: latest }
        consumer same_name: readings -> alert {
            starting_position: latest,
            lambda: { name: "p-too-big" },
        }
    }
}

fn main() {}
