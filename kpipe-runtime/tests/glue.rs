//! `format: parquet` provisioned against moto_server: the Glue table from the record type,
//! the delivery stream's conversion naming it, no phantom diffs, and a type change planned as
//! a column diff (or a replacement refused without `--allow-replace`).

use kpipe_runtime::aws::moto::MotoServer;
use kpipe_runtime::aws::{Aws, ProvisionError, plan::Op};
use serde::{Deserialize, Serialize};

mod v1 {
    use super::*;
    #[derive(Serialize, Deserialize)]
    pub(crate) struct Reading {
        pub(crate) sensor_id: String,
        pub(crate) site: String,
        pub(crate) count: i32,
        pub(crate) celsius: Option<f64>,
        pub(crate) tags: Vec<String>,
        pub(crate) observed_at: i64,
    }
}

mod v2 {
    use super::*;
    /// `count` widened, `tags` gone, `firmware` new.
    #[derive(Serialize, Deserialize)]
    pub(crate) struct Reading {
        pub(crate) sensor_id: String,
        pub(crate) site: String,
        pub(crate) count: i64,
        pub(crate) celsius: Option<f64>,
        pub(crate) firmware: String,
        pub(crate) observed_at: i64,
    }
}

mod v3 {
    use super::*;
    /// `site` is no longer a string.
    #[derive(Serialize, Deserialize)]
    pub(crate) struct Reading {
        pub(crate) sensor_id: String,
        pub(crate) site: u16,
        pub(crate) observed_at: i64,
    }
}

/// The same lake over each version of the record type.
macro_rules! lake {
    ($name:ident, $ty:ty) => {
        kpipe_runtime::pipeline! {
            pipeline $name {
                region: "us-west-2",
                stream readings: $ty { name: "readings", capacity: on_demand, partition_key: sensor_id }
                s3 lake: $ty {
                    bucket: "acme-lake",
                    prefix: "readings/!{timestamp:yyyy/MM/dd}/",
                    error_prefix: "errors/!{firehose:error-output-type}/",
                    format: parquet(compression: gzip),
                    table: { database: "telemetry", name: "readings", timestamps: [observed_at] },
                }
                delivery to_lake: readings -> lake { name: "to-lake" }
            }
        }
    };
}

lake!(LakeV1, v1::Reading);
lake!(LakeV2, v2::Reading);
lake!(LakeV3, v3::Reading);

async fn columns(config: &aws_config::SdkConfig) -> Vec<(String, String)> {
    let t = aws_sdk_glue::Client::new(config)
        .get_table()
        .database_name("telemetry")
        .name("readings")
        .send()
        .await
        .unwrap();
    t.table()
        .unwrap()
        .storage_descriptor()
        .unwrap()
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.r#type().unwrap().to_owned()))
        .collect()
}

fn pairs(cols: &[(&str, &str)]) -> Vec<(String, String)> {
    cols.iter()
        .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_glue_table_comes_from_the_type_and_follows_it() {
    let moto = MotoServer::start()
        .expect("moto_server runs (scripts/test installs it: pip install 'moto[server]')");
    let config = moto.sdk_config("us-west-2").await;
    let v1 = Aws::<LakeV1>::new(&config);
    let plan = v1.plan().await.unwrap();
    assert!(
        plan.to_string().contains(
            "+ glue table telemetry.readings (parquet, 6 columns, s3://acme-lake/readings/)"
        ),
        "{plan}"
    );
    let report = v1.apply(false).await.unwrap();
    assert!(
        report
            .to_string()
            .contains("created glue table telemetry.readings (6 columns)"),
        "{report}"
    );
    assert_eq!(
        columns(&config).await,
        pairs(&[
            ("sensor_id", "string"),
            ("site", "string"),
            ("count", "int"),
            ("celsius", "double"),
            ("tags", "array<string>"),
            ("observed_at", "timestamp"),
        ])
    );
    // The delivery stream converts against that table.
    let d = aws_sdk_firehose::Client::new(&config)
        .describe_delivery_stream()
        .delivery_stream_name("to-lake")
        .send()
        .await
        .unwrap();
    let ext = d.delivery_stream_description().unwrap().destinations()[0]
        .extended_s3_destination_description()
        .unwrap()
        .clone();
    let conv = ext.data_format_conversion_configuration().unwrap();
    assert_eq!(conv.enabled(), Some(true));
    let schema = conv.schema_configuration().unwrap();
    assert_eq!(
        (schema.database_name(), schema.table_name()),
        (Some("telemetry"), Some("readings"))
    );
    let serde = conv
        .output_format_configuration()
        .unwrap()
        .serializer()
        .unwrap()
        .parquet_ser_de()
        .unwrap();
    assert_eq!(serde.compression().map(|c| c.as_str()), Some("GZIP"));
    assert!(
        conv.input_format_configuration()
            .unwrap()
            .deserializer()
            .unwrap()
            .open_x_json_ser_de()
            .is_some()
    );
    assert_eq!(ext.buffering_hints().unwrap().size_in_mbs(), Some(128));
    assert_eq!(ext.compression_format().as_str(), "UNCOMPRESSED");

    // A second apply changes nothing.
    let again = v1.plan().await.unwrap();
    assert!(again.is_empty(), "no phantom diffs after apply:\n{again}");
    assert!(v1.apply(false).await.unwrap().actions.is_empty());

    // A changed type changes the columns in place, and plan shows them.
    let v2 = Aws::<LakeV2>::new(&config);
    let plan = v2.plan().await.unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("~ glue table telemetry.readings: ~ column count int -> bigint, + column firmware string, - column tags array<string>"),
        "{text}"
    );
    assert!(!plan.has_replacements(), "{text}");
    v2.apply(false).await.unwrap();
    assert_eq!(
        columns(&config).await,
        pairs(&[
            ("sensor_id", "string"),
            ("site", "string"),
            ("count", "bigint"),
            ("celsius", "double"),
            ("firmware", "string"),
            ("observed_at", "timestamp"),
        ])
    );
    assert!(v2.plan().await.unwrap().is_empty());

    // A column whose type changed incompatibly is a replacement, refused unless allowed.
    let v3 = Aws::<LakeV3>::new(&config);
    let refused = v3.apply(false).await.unwrap_err();
    assert!(
        matches!(&refused, ProvisionError::ReplacementRefused(what)
            if what == &["glue table telemetry.readings (column site string -> int)".to_owned()]),
        "{refused}"
    );
    assert_eq!(columns(&config).await[1], pairs(&[("site", "string")])[0]);
    let report = v3.apply(true).await.unwrap();
    assert!(
        report
            .to_string()
            .contains("deleted glue table telemetry.readings"),
        "{report}"
    );
    assert_eq!(columns(&config).await[1], pairs(&[("site", "int")])[0]);
    assert!(
        v3.plan()
            .await
            .unwrap()
            .ops
            .iter()
            .all(|o| matches!(o, Op::EnsureRole { .. }))
    );

    // destroy deletes the table (its objects stay in S3).
    // (The stream and delivery stream carry LakeV1's tag: forced.)
    let report = v3.destroy(true).await.unwrap();
    assert!(
        report
            .to_string()
            .contains("deleted glue table telemetry.readings"),
        "{report}"
    );
    let gone = aws_sdk_glue::Client::new(&config)
        .get_table()
        .database_name("telemetry")
        .name("readings")
        .send()
        .await;
    assert!(gone.is_err());
}
