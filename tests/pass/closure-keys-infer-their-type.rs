//! Key closures need no parameter annotation: the macro knows the record type.

use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    pipeline Inferred {
        stream readings: Reading {
            capacity: provisioned(shards: 2),
            partition_key: |r| format!("{}-{}", r.site, r.sensor_id),
            explicit_hash_key: |r| r.celsius as u128,
        }
        stream annotated: Reading { capacity: on_demand, partition_key: |r: &Reading| r.site.clone() }
        transform enrich: Reading -> Enriched { function: kpipe_tests::enrich }
        s3 lake: Enriched {
            bucket: "acme-inferred",
            prefix: "site=!{partitionKeyFromLambda:site}/",
            error_prefix: "errors/!{firehose:error-output-type}/",
            partition_keys: { site: |e| e.site.to_uppercase() },
        }
        delivery to_lake: readings -> enrich -> lake;
    }
}

fn main() {
    let r = Reading {
        sensor_id: "s-1".into(),
        site: "oslo".into(),
        celsius: 7.0,
    };
    assert_eq!(Inferred::readings().partition_key(&r), "oslo-s-1");
    assert_eq!(Inferred::annotated().partition_key(&r), "oslo");
    let json = serde_json::to_vec(&r).unwrap();
    let any: kpipe_runtime::pipeline::AnyStream = Inferred::readings().into();
    assert_eq!(any.keys_of(&json).unwrap(), ("oslo-s-1".to_owned(), Some(7)));
    let e = Enriched {
        sensor_id: "s-1".into(),
        site: "oslo".into(),
        fahrenheit: 44.6,
    };
    assert_eq!(
        Inferred::lake().partition_keys(&e),
        vec![("site", "OSLO".to_owned())]
    );
}
