//! Every example's CloudFormation template passes `cfn-lint -r us-west-2` with no error and no
//! warning. cfn-lint is installed by `scripts/test`; without it this test fails rather than
//! skip, so a green run always means the templates were linted.

use std::process::Command;

/// Lints one template; returns cfn-lint's findings (empty when clean).
pub fn cfn_lint(name: &str, template: &serde_json::Value) -> String {
    let dir = std::env::temp_dir().join(format!("kpipe-cfn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(template).unwrap()).unwrap();
    let out = Command::new("cfn-lint")
        .args(["-r", "us-west-2", "--"])
        .arg(&path)
        .output()
        .expect("cfn-lint runs (scripts/test installs it: pip install cfn-lint)");
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && findings.trim().is_empty() {
        String::new()
    } else {
        format!("exit {:?}\n{findings}", out.status.code())
    }
}

#[test]
fn quickstart_template_is_clean() {
    let template = kpipe_examples::telemetry::Telemetry::cloudformation();
    let findings = cfn_lint("telemetry", &template);
    assert!(
        findings.is_empty(),
        "{findings}\n{}",
        serde_json::to_string_pretty(&template).unwrap()
    );
}

#[test]
fn the_linter_catches_a_broken_template() {
    let mut template = kpipe_examples::telemetry::Telemetry::cloudformation();
    template["Resources"]["EnrichFunction"]["Properties"]["MemorySize"] = serde_json::json!(1);
    template["Resources"]["SensorLakeDeliveryStream"]["Properties"]["DeliveryStreamType"] =
        serde_json::json!("Sideways");
    let findings = cfn_lint("broken", &template);
    assert!(
        findings.contains("1 is less than the minimum of 128"),
        "{findings}"
    );
    assert!(findings.contains("Sideways"), "{findings}");
}

mod shapes {
    use kpipe_examples::telemetry::{Enriched, Reading, enrich};

    kpipe_runtime::pipeline! {
        /// Every shape a template can take.
        pub pipeline Shapes {
            tags: { team: "data", "cost-center": "4711" },
            stream secure: Reading {
                capacity: on_demand,
                partition_key: sensor_id,
                retention: 7d,
                encryption: kms,
                tags: { tier: "hot" },
            }
            stream plain: Enriched { capacity: provisioned(shards: 3), partition_key: random }
            stream large: Reading { capacity: on_demand, partition_key: sensor_id, max_record_size: 6MiB }
            transform enrich: Reading -> Enriched {
                function: enrich,
                buffer: 0.2MB or 0s,
                retries: 0,
                lambda: { memory: 1GiB, timeout: 5min, architecture: arm64 },
            }
            s3 by_lambda: Enriched {
                bucket: "acme-shapes-lambda",
                prefix: "site=!{partitionKeyFromLambda:site}/!{timestamp:yyyy/MM/dd}/",
                error_prefix: "errors/!{firehose:error-output-type}/",
                buffer: 128MiB or 900s,
                compression: zip,
                time_zone: "Asia/Tokyo",
                partition_keys: { site: |e: &Enriched| e.site.clone() },
            }
            s3 by_query: Enriched {
                bucket: "acme-shapes-query",
                prefix: "sensor=!{partitionKeyFromQuery:sensor}/",
                error_prefix: "errors/!{firehose:error-output-type}/",
                compression: hadoop_snappy,
                file_extension: ".snappy",
                partition_keys: { sensor: .sensor_id },
                encryption: kms("arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            }
            s3 existing: Enriched { bucket: "acme-shapes-existing", create_bucket: false, compression: snappy }
            s3 raw: Reading { bucket: "acme-shapes-raw", prefix: "source/", compression: gzip }
            delivery lambda_keys: secure -> enrich -> by_lambda { s3_backup: raw }
            delivery query_keys: plain -> by_query;
            delivery direct_in: direct -> existing { role_arn: "arn:aws:iam::123456789012:role/firehose" }
            delivery transformed_direct: direct -> enrich -> existing {
                encryption: kms("arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"),
            }
            consumer watcher: secure -> crate::shapes::watch {
                starting_position: trim_horizon,
                maximum_retries: unlimited,
                maximum_record_age: 1h,
                batch_window: 30s,
                parallelization: 4,
                on_failure: sqs("watcher-failed"),
                filter_criteria: [r#"{"data": {"site": [{"prefix": "os"}]}}"#],
            }
            consumer per_window: plain -> crate::shapes::Counts {
                starting_position: latest,
                tumbling_window: 120s,
            }
            consumer large_watcher: large -> crate::shapes::watch_large {
                starting_position: at_timestamp("2026-12-01T00:00:00Z"),
                on_failure: s3("acme-shapes-failed"),
            }
        }
    }

    fn watch(_r: Reading) {}

    /// Records per tumbling window.
    #[derive(Default, serde::Serialize, serde::Deserialize)]
    pub(crate) struct Counts {
        n: u64,
    }

    impl kpipe_runtime::Aggregate for Counts {
        type Record = Enriched;
        type Error = String;

        fn add(&mut self, _r: Enriched) -> Result<(), String> {
            self.n += 1;
            Ok(())
        }

        async fn close(self, _w: kpipe_runtime::Window) -> Result<(), String> {
            Ok(())
        }
    }
    fn watch_large(_r: Reading) {}

    #[test]
    fn every_shape_is_clean() {
        let template = Shapes::cloudformation();
        let findings = super::cfn_lint("shapes", &template);
        assert!(
            findings.is_empty(),
            "{findings}\n{}",
            serde_json::to_string_pretty(&template).unwrap()
        );
        let r = &template["Resources"];
        assert_eq!(
            r["SecureStream"]["Properties"]["StreamEncryption"]["KeyId"],
            "alias/aws/kinesis"
        );
        assert_eq!(r["PlainStream"]["Properties"]["ShardCount"], 3);
        // Quoted tag keys hold what identifiers cannot.
        let tags = serde_json::to_string(&r["PlainStream"]["Properties"]["Tags"]).unwrap();
        assert!(
            tags.contains(r#"{"Key":"cost-center","Value":"4711"}"#),
            "{tags}"
        );
        // Direct PUT deliveries are encrypted at rest: an AWS-owned key by default, or the
        // declared key; a stream-sourced one relies on its stream.
        let sse = |id: &str| &r[id]["Properties"]["DeliveryStreamEncryptionConfigurationInput"];
        assert_eq!(sse("DirectInDeliveryStream")["KeyType"], "AWS_OWNED_CMK");
        assert_eq!(
            sse("TransformedDirectDeliveryStream")["KeyType"],
            "CUSTOMER_MANAGED_CMK"
        );
        assert!(sse("QueryKeysDeliveryStream").is_null());
        // SSE-KMS on a destination: its bucket's default encryption (with a Bucket Key), the
        // delivery's EncryptionConfiguration, and the delivery role may use exactly that key
        // through S3.
        let key = "arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let rule = &r["ByQueryBucket"]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            [0];
        assert_eq!(
            rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"],
            "aws:kms"
        );
        assert_eq!(rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"], key);
        assert_eq!(rule["BucketKeyEnabled"], true);
        assert_eq!(
            r["QueryKeysDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]["EncryptionConfiguration"]
                ["KMSEncryptionConfig"]["AWSKMSKeyARN"],
            key
        );
        let role = serde_json::to_string(&r["QueryKeysDeliveryRole"]).unwrap();
        assert!(
            role.contains("kms:GenerateDataKey") && role.contains(key),
            "{role}"
        );
        let other = serde_json::to_string(&r["LambdaKeysDeliveryRole"]).unwrap();
        assert!(
            !other.contains("kms:GenerateDataKey"),
            "only the role of the encrypted destination's delivery may use the key"
        );
        // On-failure destinations and filters reach the mappings; each function's role may send
        // to exactly its destination.
        let watcher = &r["WatcherEventSourceMapping"]["Properties"];
        assert_eq!(
            watcher["DestinationConfig"]["OnFailure"]["Destination"]["Fn::Sub"],
            "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:watcher-failed"
        );
        assert_eq!(
            watcher["FilterCriteria"]["Filters"][0]["Pattern"],
            r#"{"data": {"site": [{"prefix": "os"}]}}"#
        );
        assert_eq!(
            r["PerWindowEventSourceMapping"]["Properties"]["TumblingWindowInSeconds"],
            120
        );
        assert!(watcher.get("TumblingWindowInSeconds").is_none());
        let role = serde_json::to_string(&r["WatcherFunctionRole"]).unwrap();
        assert!(
            role.contains("sqs:SendMessage") && role.contains("watcher-failed"),
            "{role}"
        );
        let large = serde_json::to_string(&r["LargeWatcherFunctionRole"]).unwrap();
        assert!(
            large.contains("s3:PutObject")
                && large.contains("acme-shapes-failed/*")
                && !large.contains("sqs:"),
            "{large}"
        );
        // Source record backup: enabled, to the backup destination's bucket and prefix, and the
        // delivery role may write there.
        let ext =
            &r["LambdaKeysDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"];
        assert_eq!(ext["S3BackupMode"], "Enabled");
        assert_eq!(ext["S3BackupConfiguration"]["Prefix"], "source/");
        assert_eq!(ext["S3BackupConfiguration"]["CompressionFormat"], "GZIP");
        assert_eq!(
            ext["S3BackupConfiguration"]["BucketARN"]["Fn::Sub"],
            "arn:${AWS::Partition}:s3:::acme-shapes-raw"
        );
        let role = serde_json::to_string(&r["LambdaKeysDeliveryRole"]).unwrap();
        assert!(role.contains("acme-shapes-raw/*"), "{role}");
        assert!(r.get("RawBucket").is_some(), "the backup bucket is created");
        // The declared maximum record size reaches AWS; the default is left to AWS.
        assert_eq!(r["LargeStream"]["Properties"]["MaxRecordSizeInKiB"], 6144);
        assert!(
            r["PlainStream"]["Properties"]
                .get("MaxRecordSizeInKiB")
                .is_none()
        );
        assert!(
            r.get("ExistingBucket").is_none(),
            "a bucket kpipe does not own is not in the template"
        );
        assert!(
            r.get("DirectInDeliveryRole").is_none(),
            "a given role is used as it is"
        );
        let extraction = &r["QueryKeysDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]
            ["ProcessingConfiguration"]["Processors"][0];
        let query = extraction["Parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["ParameterName"] == "MetadataExtractionQuery")
            .unwrap();
        assert_eq!(query["ParameterValue"], "{sensor: .sensor_id}");
        // Least privilege: this delivery's role reads exactly its stream.
        let statements =
            &r["QueryKeysDeliveryRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"];
        let kinesis = statements
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["Action"][0] == "kinesis:DescribeStream")
            .unwrap();
        assert_eq!(kinesis["Resource"]["Fn::Sub"], "${PlainStream.Arn}");
        // A consumer: its function reads exactly its (encrypted) stream, through a mapping
        // with partial batch responses and AWS's -1 for unlimited retries.
        let mapping = &r["WatcherEventSourceMapping"]["Properties"];
        assert_eq!(mapping["EventSourceArn"]["Fn::GetAtt"][0], "SecureStream");
        assert_eq!(mapping["FunctionName"]["Ref"], "WatcherFunction");
        assert_eq!(mapping["StartingPosition"], "TRIM_HORIZON");
        assert_eq!(mapping["MaximumRetryAttempts"], -1);
        assert_eq!(mapping["MaximumRecordAgeInSeconds"], 3600);
        let from_time = &r["LargeWatcherEventSourceMapping"]["Properties"];
        assert_eq!(from_time["StartingPosition"], "AT_TIMESTAMP");
        assert_eq!(from_time["StartingPositionTimestamp"], 1_796_083_200);
        assert_eq!(mapping["MaximumBatchingWindowInSeconds"], 30);
        assert_eq!(mapping["ParallelizationFactor"], 4);
        assert_eq!(
            mapping["FunctionResponseTypes"][0],
            "ReportBatchItemFailures"
        );
        let watcher =
            r["WatcherFunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                .as_array()
                .unwrap();
        let reads: Vec<&serde_json::Value> = watcher
            .iter()
            .filter(|s| s["Action"][0] == "kinesis:DescribeStream")
            .collect();
        assert_eq!(reads.len(), 1);
        assert_eq!(reads[0]["Resource"]["Fn::Sub"], "${SecureStream.Arn}");
        assert!(watcher.iter().any(|s| s["Action"] == "kms:Decrypt"));
        for (id, resource) in r.as_object().unwrap() {
            if resource["Type"] == "AWS::IAM::Role" {
                assert!(
                    !resource.to_string().contains("\"*\""),
                    "{id}: no wildcard resources"
                );
            }
        }
        // Buckets kpipe owns refuse requests without TLS.
        let deny = &r["ByLambdaBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"][0];
        assert_eq!(
            (&deny["Effect"], &deny["Principal"]),
            (&serde_json::json!("Deny"), &serde_json::json!("*"))
        );
        assert_eq!(deny["Condition"]["Bool"]["aws:SecureTransport"], "false");
    }
}

mod lake {
    use kpipe_examples::telemetry::Enriched;

    kpipe_runtime::pipeline! {
        /// ORC beside the example's Parquet, and a table that exists already.
        pub pipeline Orc {
            stream readings: Enriched { capacity: on_demand, partition_key: sensor_id }
            s3 orc: Enriched {
                bucket: "acme-orc",
                format: orc(compression: zlib, stripe_size: 32MiB),
                buffer: 64MiB or 60s,
            }
            s3 shared: Enriched {
                bucket: "acme-shared",
                format: parquet,
                table: { database: "warehouse", name: "enriched", create: false },
            }
            delivery to_orc: readings -> orc;
            delivery to_shared: readings -> shared;
        }
    }

    #[test]
    fn the_parquet_lake_template_is_clean_and_names_its_table() {
        let template = kpipe_examples::lake::Lake::cloudformation();
        let findings = super::cfn_lint("lake", &template);
        assert!(
            findings.is_empty(),
            "{findings}\n{}",
            serde_json::to_string_pretty(&template).unwrap()
        );
        let r = &template["Resources"];
        let table = &r["TelemetryReadingsGlueTable"]["Properties"];
        assert_eq!(table["DatabaseName"]["Ref"], "TelemetryGlueDatabase");
        let sd = &table["TableInput"]["StorageDescriptor"];
        assert_eq!(
            sd["Columns"],
            serde_json::json!([
                { "Name": "sensor_id", "Type": "string" },
                { "Name": "site", "Type": "string" },
                { "Name": "fahrenheit", "Type": "double" },
                { "Name": "at_ms", "Type": "timestamp" },
            ])
        );
        assert_eq!(sd["Location"], "s3://acme-lake/readings/");
        let dest = &r["ToLakeDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"];
        let conv = &dest["DataFormatConversionConfiguration"];
        assert_eq!(conv["SchemaConfiguration"]["TableName"], "readings");
        assert_eq!(conv["SchemaConfiguration"]["DatabaseName"], "telemetry");
        assert_eq!(
            conv["OutputFormatConfiguration"]["Serializer"]["ParquetSerDe"]["Compression"],
            "SNAPPY"
        );
        assert_eq!(dest["CompressionFormat"], "UNCOMPRESSED");
        // The delivery role reads exactly that table's schema.
        let role = serde_json::to_string(&r["ToLakeDeliveryRole"]).unwrap();
        for needle in [
            "glue:GetTable",
            "glue:GetTableVersions",
            ":catalog",
            ":database/telemetry",
            ":table/telemetry/readings",
        ] {
            assert!(role.contains(needle), "{needle} in {role}");
        }
    }

    #[test]
    fn orc_and_existing_tables_are_clean() {
        let template = Orc::cloudformation();
        let findings = super::cfn_lint("orc", &template);
        assert!(
            findings.is_empty(),
            "{findings}\n{}",
            serde_json::to_string_pretty(&template).unwrap()
        );
        let r = &template["Resources"];
        let orc = &r["ToOrcDeliveryStream"]["Properties"]["ExtendedS3DestinationConfiguration"]["DataFormatConversionConfiguration"]
            ["OutputFormatConfiguration"]["Serializer"]["OrcSerDe"];
        assert_eq!(orc["Compression"], "ZLIB");
        assert_eq!(orc["StripeSizeBytes"], 32 * 1024 * 1024);
        assert!(r["OrcOrcGlueTable"].is_object());
        // An existing table is read, not created.
        assert!(r.get("WarehouseEnrichedGlueTable").is_none());
        assert!(r.get("WarehouseGlueDatabase").is_none());
    }
}
