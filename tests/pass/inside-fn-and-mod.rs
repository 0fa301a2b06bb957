//! A pipeline can be declared inside a function or a module, several per crate, and
//! several in one macro call.

mod nested {
    use kpipe_tests::Reading;

    kpipe_runtime::pipeline! {
        pub pipeline One {
            stream a: Reading { capacity: on_demand, partition_key: sensor_id }
        }
        pub(crate) pipeline Two {
            stream b: Reading { capacity: on_demand, partition_key: site }
        }
    }
}

fn main() {
    use kpipe_tests::Enriched;

    kpipe_runtime::pipeline! {
        pipeline Local {
            s3 lake: Enriched { bucket: "acme-local" }
            delivery put: direct -> lake;
        }
    }

    assert_eq!(nested::One::spec().streams[0].id, "a");
    assert_eq!(nested::Two::spec().streams[0].id, "b");
    assert_eq!(Local::spec().deliveries[0].name, "put");
    assert_eq!(Local::spec().destinations[0].prefix, None);
}
