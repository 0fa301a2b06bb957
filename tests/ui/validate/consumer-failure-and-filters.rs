use kpipe_tests::Reading;

fn alert(_r: Reading) {}

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        consumer wrong_arn: readings -> alert {
            starting_position: latest,
            on_failure: sqs("arn:aws:sns:us-east-1:123456789012:alerts"),
        }
        consumer bad_queue: readings -> alert {
            starting_position: latest,
            on_failure: sqs("alerts queue"),
        }
        consumer bad_kind: readings -> alert {
            starting_position: latest,
            on_failure: kafka("alerts"),
        }
        consumer not_json: readings -> alert {
            starting_position: latest,
            filter_criteria: ["{data: 1}"],
        }
        consumer metadata: readings -> alert {
            starting_position: latest,
            filter_criteria: [r#"{"partitionKey": ["a"]}"#, r#"{"$or": []}"#],
        }
        consumer bad_rule: readings -> alert {
            starting_position: latest,
            filter_criteria: [r#"{"data": {"site": [{"starts-with": "os"}]}}"#],
        }
        consumer long_window: readings -> alert {
            starting_position: latest,
            tumbling_window: 20min,
        }
        consumer too_many: readings -> alert {
            starting_position: latest,
            filter_criteria: [
                r#"{"data": {"a": [1]}}"#, r#"{"data": {"a": [2]}}"#, r#"{"data": {"a": [3]}}"#,
                r#"{"data": {"a": [4]}}"#, r#"{"data": {"a": [5]}}"#, r#"{"data": {"a": [6]}}"#,
            ],
        }
    }
}

fn main() {}
