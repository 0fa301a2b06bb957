//! Firehose's inline parsing: a `partitionKeyFromQuery` key is a jq query that Firehose runs on
//! the record's JSON after the transform (Amazon Data Firehose, Partition streaming data:
//! <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-partitioning-keys.html>).
//! kpipe runs the same query with jaq, a maintained jq implementation, on the record's bytes, so
//! a record that has the queried fields is partitioned whatever else it holds or lacks.
//!
//! A key cannot be read, and the record goes to the error prefix as
//! `DynamicPartitioning.MetadataExtractionFailed` (Amazon Data Firehose, Troubleshoot dynamic
//! partitioning errors:
//! <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-error-handling.html>),
//! when the record is not JSON, the query fails or yields nothing, `null`, an array or an object,
//! or yields an empty string. AWS does not document the empty string; kpipe refuses it because
//! `site=/` is a partition no query can ask for (docs/engine.md).

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;

type Data = data::JustLut<Val>;

/// One compiled query.
pub(crate) struct Query {
    source: &'static str,
    filter: jaq_core::Filter<Data>,
}

impl std::fmt::Debug for Query {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Query").field(&self.source).finish()
    }
}

impl Query {
    /// Compiles `source`.
    pub(crate) fn compile(source: &'static str) -> Result<Self, String> {
        // jq's core definitions and JSON functions; the language declares field paths
        // (`.site`, `.a.b`), which need nothing more.
        let defs = jaq_core::defs();
        let funs = jaq_core::funs().chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(
                &arena,
                File {
                    code: source,
                    path: (),
                },
            )
            .map_err(|e| format!("jq query `{source}` does not parse: {e:?}"))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|e| format!("jq query `{source}` does not compile: {e:?}"))?;
        Ok(Self { source, filter })
    }

    /// The key's value for one record's JSON, or why it cannot be read.
    pub(crate) fn eval(&self, json: &[u8]) -> Result<String, String> {
        let source = self.source;
        let input = jaq_json::read::parse_single(json)
            .map_err(|e| format!("the record is not JSON ({e}), so query `{source}` cannot run"))?;
        let ctx = Ctx::<Data>::new(&self.filter.lut, Vars::new([]));
        let mut out = self.filter.id.run((ctx, input));
        let value = match out.next() {
            None => return Err(format!("query `{source}` yields nothing")),
            // An exception that is not an error is a failed query too; jaq's
            // `unwrap_valr` would exit the process.
            Some(Err(e)) => {
                return Err(match e.get_err() {
                    Ok(e) => format!("query `{source}` failed: {e}"),
                    Err(_) => format!("query `{source}` halted"),
                });
            }
            Some(Ok(v)) => v,
        };
        let text = match &value {
            Val::Null => return Err(format!("query `{source}` yields null")),
            Val::Arr(_) | Val::Obj(_) => {
                return Err(format!(
                    "query `{source}` yields {value}, not a string, number or boolean"
                ));
            }
            Val::TStr(b) | Val::BStr(b) => String::from_utf8_lossy(b).into_owned(),
            Val::Bool(_) | Val::Num(_) => value.to_string(),
        };
        if text.is_empty() {
            return Err(format!("query `{source}` yields an empty string"));
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::Query;

    fn eval(q: &'static str, json: &str) -> Result<String, String> {
        Query::compile(q).expect("compiles").eval(json.as_bytes())
    }

    #[test]
    fn reads_scalars_as_jq_prints_them_raw() {
        assert_eq!(eval(".site", r#"{"site":"lon-1"}"#).as_deref(), Ok("lon-1"));
        assert_eq!(eval(".a.b", r#"{"a":{"b":42}}"#).as_deref(), Ok("42"));
        assert_eq!(eval(".x", r#"{"x":1.5}"#).as_deref(), Ok("1.5"));
        assert_eq!(eval(".ok", r#"{"ok":true}"#).as_deref(), Ok("true"));
        assert_eq!(
            eval(".s", "{\"s\":\"caf\u{e9}\"}\n").as_deref(),
            Ok("caf\u{e9}")
        );
    }

    #[test]
    fn a_record_needs_only_the_queried_fields() {
        assert_eq!(
            eval(".site", r#"{"site":"lon-1","extra":[1,2]}"#).as_deref(),
            Ok("lon-1")
        );
    }

    #[test]
    fn fails_where_firehose_cannot_read_a_key() {
        let not_json = eval(".site", "site=lon").unwrap_err();
        assert!(not_json.contains("not JSON"), "{not_json}");
        assert!(
            eval(".site", r#"{"other":1}"#)
                .unwrap_err()
                .contains("null")
        );
        assert!(
            eval(".site", r#"{"site":null}"#)
                .unwrap_err()
                .contains("null")
        );
        assert!(
            eval(".site", r#"{"site":[1]}"#)
                .unwrap_err()
                .contains("not a string")
        );
        assert!(
            eval(".site", r#"{"site":{}}"#)
                .unwrap_err()
                .contains("not a string")
        );
        assert!(
            eval(".site", r#"{"site":""}"#)
                .unwrap_err()
                .contains("empty")
        );
        assert!(
            eval(".a.b", r#"{"a":"text"}"#)
                .unwrap_err()
                .contains("failed")
        );
        assert!(eval("empty", r#"{}"#).unwrap_err().contains("nothing"));
    }
}
