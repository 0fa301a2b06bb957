use kpipe_tests::Reading;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        s3 lake: Reading { bucket: "acme-lake" }
        // A stream-sourced delivery keeps no data at rest: the stream's encryption applies.
        delivery from_stream: readings -> lake { encryption: aws_owned }
        // Firehose takes a key ARN, not an alias.
        delivery by_alias: direct -> lake { encryption: kms("alias/my-key") }
        delivery unknown: direct -> lake { encryption: always }
    }
}

fn main() {}
