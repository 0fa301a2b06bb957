use kpipe_tests::Reading;

// One missing comma inside a stage is one error: the stage, its settings that parse and its
// generated function still exist, so the delivery that reads it and the code that calls
// `P::clicks()` add nothing.
kpipe_runtime::pipeline! {
    pipeline P {
        stream clicks: Reading { capacity: on_demand retention: 48h, partition_key: sensor_id }
        s3 lake: Reading { bucket: "acme-clicks" }
        delivery to_lake: clicks -> lake;
    }
}

fn main() {
    let _ = P::clicks();
    let _ = P::to_lake();
}
