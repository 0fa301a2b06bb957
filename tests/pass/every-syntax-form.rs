//! Every key of every stage, with the values and units the language accepts.

use kpipe_runtime::spec::{Architecture, Capacity, Compression, KeySource, PartitionKeySource};
use kpipe_tests::{Enriched, Reading};

kpipe_runtime::pipeline! {
    /// Every syntax form.
    pub pipeline Everything {
        region: "eu-central-1",
        tags: { team: "data", cost_center: "42" },

        /// A provisioned stream with every option.
        stream readings: Reading {
            name: "sensor.readings_v2",
            capacity: provisioned(shards: 4),
            retention: 7d,
            partition_key: .sensor_id,
            explicit_hash_key: |r: &Reading| r.celsius as u128,
            max_record_size: 1024KiB,
            encryption: kms("alias/telemetry"),
            tags: { tier: "hot" },
        }
        stream closures: Reading {
            capacity: on_demand,
            partition_key: |r: &Reading| format!("{}-{}", r.site, r.sensor_id),
            encryption: kms,
        }
        stream randoms: Reading { capacity: on_demand, partition_key: random, encryption: none }

        transform enrich: Reading -> Enriched {
            function: kpipe_tests::enrich,
            buffer: 60s or 3MiB,
            retries: 0,
            lambda: { name: "enrich-fn", memory: 1GiB, timeout: 5min, architecture: x86_64 },
        }
        transform with_result: Reading -> Enriched { function: kpipe_tests::enrich_result, buffer: 0.2MB }
        transform with_async: Reading -> Enriched { function: kpipe_tests::enrich_async, buffer: 0s }
        transform with_closure: Reading -> Enriched {
            function: |r: Reading| kpipe_tests::enrich(r),
        }

        s3 lake: Enriched {
            bucket: "acme.telemetry-lake",
            create_bucket: false,
            prefix: "raw/site=!{partitionKeyFromQuery:site}/sensor=!{partitionKeyFromLambda:sensor}/!{timestamp:yyyy-MM-dd'T'HH}/!{firehose:random-string}/",
            error_prefix: "errors/!{firehose:error-output-type}/!{timestamp:yyyy/DDD}/",
            buffer: 128MiB or 900s,
            compression: hadoop_snappy,
            file_extension: ".json.snappy",
            time_zone: "America/New_York",
            partition_keys: { site: .site, sensor: |e: &Enriched| e.sensor_id.clone() },
            newline: false,
        }
        s3 plain: Enriched { bucket: "acme-plain" }
        s3 zipped: Enriched { bucket: "acme-zipped", compression: zip, buffer: 1MiB }
        s3 snappy: Reading { bucket: "acme-snappy", compression: snappy, buffer: 0s }

        delivery to_lake: readings -> enrich -> lake {
            name: "to-lake",
            role_arn: "arn:aws:iam::123456789012:role/firehose",
            tags: { owner: "ingest" },
        }
        delivery results: closures -> with_result -> plain;
        delivery asyncs: randoms -> with_async -> zipped;
        delivery raw: readings -> snappy;
        delivery direct_put: direct -> with_closure -> plain;
        delivery direct_raw: direct -> snappy;
    }
}

fn main() {
    let spec = Everything::spec();
    assert_eq!(spec.doc, "Every syntax form.");
    assert_eq!(spec.region, Some("eu-central-1"));
    assert_eq!(spec.tags.len(), 2);

    let s = &spec.streams[0];
    assert_eq!(s.name, "sensor.readings_v2");
    assert_eq!(s.capacity, Capacity::Provisioned { shards: 4 });
    assert_eq!(s.retention_hours, 168);
    assert_eq!(s.partition_key, PartitionKeySource::Field("sensor_id"));
    assert!(s.explicit_hash_key);
    assert_eq!(s.max_record_size_kib, 1024);
    assert_eq!(s.kms_key, Some("alias/telemetry"));
    assert_eq!(spec.streams[1].kms_key, Some("alias/aws/kinesis"));
    assert_eq!(spec.streams[1].name, "closures");
    assert_eq!(spec.streams[2].partition_key, PartitionKeySource::Random);

    let t = &spec.transforms[0];
    assert_eq!((t.buffer.size_bytes, t.buffer.interval_secs, t.retries), (3 << 20, 60, 0));
    assert_eq!(t.lambda.name, "enrich-fn");
    assert_eq!((t.lambda.memory_mib, t.lambda.timeout_secs), (1024, 300));
    assert_eq!(t.lambda.architecture, Architecture::X86_64);
    assert_eq!(spec.transforms[1].buffer.size_bytes, 209_715);
    assert_eq!(spec.transforms[1].lambda.name, "everything-with-result");
    assert_eq!(spec.transforms[3].function, "<closure>");

    let lake = &spec.destinations[0];
    assert!(!lake.create_bucket);
    assert_eq!(lake.compression, Compression::HadoopSnappy);
    assert_eq!(lake.partition_keys[0].source, KeySource::Query(".site"));
    assert_eq!(lake.partition_keys[1].source, KeySource::Lambda);
    assert!(!lake.newline);
    assert_eq!(spec.destinations[1].buffer.size_bytes, 5 << 20);
    assert_eq!(spec.destinations[1].buffer.interval_secs, 300);
    assert!(spec.destinations[1].newline);

    assert_eq!(spec.deliveries.len(), 6);
    assert_eq!(spec.deliveries[1].name, "results");
    assert_eq!(spec.deliveries[4].source, kpipe_runtime::spec::SourceSpec::Direct);

    // The typed handles line up with the spec.
    let r = Reading { sensor_id: "s1".into(), site: "berlin".into(), celsius: 7.0 };
    assert_eq!(Everything::readings().partition_key(&r), "s1");
    assert_eq!(Everything::readings().explicit_hash_key(&r), Some(7));
    assert_eq!(Everything::closures().partition_key(&r), "berlin-s1");
    assert_eq!(Everything::randoms().partition_key(&r).len(), 36);
    let e = Enriched { sensor_id: "s1".into(), site: "berlin".into(), fahrenheit: 44.6 };
    assert_eq!(
        Everything::lake().partition_keys(&e),
        vec![("site", "berlin".to_owned()), ("sensor", "s1".to_owned())]
    );
    assert_eq!(<Everything as kpipe_runtime::Pipeline>::deliveries().len(), 6);
    assert!(spec.to_json().contains("\"hadoop_snappy\""));
}
