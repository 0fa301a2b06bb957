kpipe_runtime::pipeline! {
    pipeline P {
        tags: { team: "data", team: "platform", aws_owner: "me", awsome: "AWS:me", note: 42 },
        stream s: kpipe_tests::Reading {
            capacity: on_demand,
            partition_key: sensor_id,
            tags: { "cost-center": "4711", "team:owner": "data@acme", "aws:secret": "x", "a#b": "y", "": "z" },
            "retention": 48h,
        }
    }
}

fn main() {}
