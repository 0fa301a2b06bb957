//! Generated code uses absolute paths: it compiles when the caller shadows the prelude.
#![allow(dead_code, non_camel_case_types)]

use kpipe_tests::{Enriched, Reading};

struct Result;
struct Option;
struct Vec;
struct String;
struct Box;
struct Some;
struct None;
struct Ok;
struct Err;
struct Default;
struct Clone;
mod core {}
mod std {}
mod serde {}

kpipe_runtime::pipeline! {
    pipeline Shadowed {
        region: "us-west-2",
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        transform enrich: Reading -> Enriched { function: kpipe_tests::enrich }
        s3 lake: Enriched {
            bucket: "acme-lake",
            prefix: "raw/!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |e: &Enriched| e.site.clone() },
        }
        delivery d: readings -> enrich -> lake;
    }
}

fn main() {
    assert_eq!(Shadowed::spec().deliveries.len(), 1);
    let _ = Shadowed::d();
}
