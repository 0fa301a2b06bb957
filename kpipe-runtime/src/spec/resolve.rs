//! Resolving a spec's names: a delivery's stages looked up once ([`PipelineSpec::view`]),
//! and the processors a delivery stream needs.

use super::{DeliverySpec, KeySource, PipelineSpec, S3Spec, SourceSpec, StreamSpec, TransformSpec};

impl PipelineSpec {
    /// A delivery with the stages it names looked up: the one place ids are resolved.
    ///
    /// # Errors
    /// A name that is not a stage of this pipeline (a spec not written by `pipeline!`, which
    /// checks every name).
    pub fn view(&self, d: &'static DeliverySpec) -> Result<DeliveryView, SpecError> {
        let missing = |kind: &str, id: &str| {
            SpecError(format!(
                "delivery `{}` names {kind} `{id}`, which the pipeline does not declare",
                d.id
            ))
        };
        let source = match d.source {
            SourceSpec::Stream(id) => Some(self.stream(id).ok_or_else(|| missing("stream", id))?),
            SourceSpec::Direct => None,
        };
        let transform = match d.transform {
            Some(id) => Some(self.transform(id).ok_or_else(|| missing("transform", id))?),
            None => None,
        };
        let destination = self
            .destination(d.destination)
            .ok_or_else(|| missing("s3 destination", d.destination))?;
        let backup = match d.backup {
            Some(id) => Some(
                self.destination(id)
                    .ok_or_else(|| missing("s3 destination", id))?,
            ),
            None => None,
        };
        Ok(DeliveryView {
            spec: d,
            source,
            transform,
            destination,
            backup,
        })
    }

    /// Every delivery as a [`DeliveryView`], in declaration order; those whose names do not
    /// resolve are left out (see [`check`](Self::check)).
    pub fn delivery_views(&self) -> Vec<DeliveryView> {
        self.deliveries
            .iter()
            .filter_map(|d| self.view(d).ok())
            .collect()
    }

    /// Whether every name the spec uses resolves, and every Parquet or ORC destination's
    /// record type has Glue columns.
    ///
    /// # Errors
    /// The first that does not.
    pub fn check(&self) -> Result<(), SpecError> {
        for d in self.deliveries {
            self.view(d)?;
        }
        for s3 in self.destinations {
            if let Some(c) = &s3.conversion {
                c.columns()
                    .map_err(|e| SpecError(format!("s3 destination `{}`: {e}", s3.id)))?;
            }
        }
        for c in self.consumers {
            if self.stream(c.stream).is_none() {
                return Err(SpecError(format!(
                    "consumer `{}` reads stream `{}`, which the pipeline does not declare",
                    c.id, c.stream
                )));
            }
        }
        Ok(())
    }
}

/// A delivery with the stages it names (see [`PipelineSpec::view`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeliveryView {
    /// The delivery.
    pub spec: &'static DeliverySpec,
    /// The stream it reads; `None` for Direct PUT.
    pub source: Option<&'static StreamSpec>,
    /// Its transform, if any.
    pub transform: Option<&'static TransformSpec>,
    /// Its S3 destination.
    pub destination: &'static S3Spec,
    /// The destination of its source record backup, if any.
    pub backup: Option<&'static S3Spec>,
}

/// A spec whose names do not resolve.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecError(pub String);

impl std::fmt::Display for SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SpecError {}

/// A processor a delivery stream needs (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>): its type and parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessorSpec {
    /// `Lambda`, `MetadataExtraction` or `AppendDelimiterToRecord`.
    pub kind: &'static str,
    /// Parameters, sorted by name.
    pub params: Vec<(&'static str, ParamValue)>,
}

/// A processor parameter's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamValue {
    /// A literal value.
    Text(String),
    /// The ARN of this transform's Lambda function (known once deployed).
    LambdaArn {
        /// The transform's id.
        transform: &'static str,
        /// The function's name.
        function: &'static str,
    },
}

/// A processor buffer size as Firehose's decimal `BufferSizeInMBs` (0.2-3).
pub fn processor_buffer_mb(bytes: u64) -> String {
    let v = bytes as f64 / (1024.0 * 1024.0);
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

impl PipelineSpec {
    /// The processors a delivery stream needs: the transform's Lambda function, jq metadata
    /// extraction for field-path partition keys, and the newline delimiter when there is no
    /// transform to add it.
    pub fn processors(&self, d: &DeliverySpec) -> Vec<ProcessorSpec> {
        let mut out = Vec::new();
        let Some(s3) = self.destination(d.destination) else {
            return out;
        };
        if let Some(t) = d.transform.and_then(|id| self.transform(id)) {
            out.push(ProcessorSpec {
                kind: "Lambda",
                params: vec![
                    (
                        "BufferIntervalInSeconds",
                        ParamValue::Text(t.buffer.interval_secs.to_string()),
                    ),
                    (
                        "BufferSizeInMBs",
                        ParamValue::Text(processor_buffer_mb(t.buffer.size_bytes)),
                    ),
                    (
                        "LambdaArn",
                        ParamValue::LambdaArn {
                            transform: t.id,
                            function: t.lambda.name,
                        },
                    ),
                    ("NumberOfRetries", ParamValue::Text(t.retries.to_string())),
                ],
            });
        }
        let queries: Vec<String> = s3
            .partition_keys
            .iter()
            .filter_map(|k| match k.source {
                KeySource::Query(q) => Some(format!("{}: {q}", k.name)),
                KeySource::Lambda => None,
            })
            .collect();
        if !queries.is_empty() {
            out.push(ProcessorSpec {
                kind: "MetadataExtraction",
                params: vec![
                    ("JsonParsingEngine", ParamValue::Text("JQ-1.6".into())),
                    (
                        "MetadataExtractionQuery",
                        ParamValue::Text(format!("{{{}}}", queries.join(", "))),
                    ),
                ],
            });
        }
        if d.transform.is_none() && s3.newline {
            out.push(ProcessorSpec {
                kind: "AppendDelimiterToRecord",
                params: vec![("Delimiter", ParamValue::Text("\\n".into()))],
            });
        }
        out
    }
}
