//! The Firehose response written straight as JSON (Amazon Data Firehose, Data transformation and status model: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation-status-model.html>), answer by answer, with
//! the exact size of each answer known in advance, so the handler can keep the whole response
//! within Lambda's 6 MB (Amazon Data Firehose, Transform source data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>) without building it as a tree.

use std::ops::Range;

/// How answers are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    /// What the Lambda binary answers: `metadata` only for records with partition keys
    /// (33 bytes less per record).
    Raw,
    /// What aws_lambda_events' response type serialises to: `metadata` on every record, empty
    /// when there are no partition keys. The budget then holds for that serialisation too.
    Typed,
}

/// `,"metadata":{"partitionKeys":{}}`
const EMPTY_METADATA: usize = 32;

impl Style {
    /// Bytes of the answer `{"recordId":..,"result":"ProcessingFailed","data":""}` to a record
    /// with this id, and its separator: the least every record's answer takes. `plain`: the
    /// id is known to need no escaping.
    pub(super) fn envelope(self, id: &str, plain: bool) -> usize {
        let id = if plain { id.len() + 2 } else { json_len(id) };
        let metadata = match self {
            Style::Raw => 0,
            Style::Typed => EMPTY_METADATA,
        };
        // `{"recordId":` 12, `,"result":"` 11, `ProcessingFailed` 16, `","data":"` 10, `"}` 2, `,` 1
        id + 52 + metadata
    }

    /// Bytes an `Ok` answer with this output and these keys takes beyond its envelope.
    pub(super) fn output_cost(self, data: usize, keys: &[(&'static str, String)]) -> usize {
        // `"k":"v"` pairs and the commas between them.
        let pairs = keys
            .iter()
            .map(|(k, v)| json_len(k) + json_len(v) + 2)
            .sum::<usize>()
            .saturating_sub(1);
        let metadata = match (self, keys.is_empty()) {
            (_, true) => 0,
            (Style::Raw, false) => EMPTY_METADATA + pairs,
            (Style::Typed, false) => pairs,
        };
        // An `Ok` answer is 14 bytes shorter than the `ProcessingFailed` of its envelope.
        (base64_len(data) + metadata).saturating_sub("ProcessingFailed".len() - "Ok".len())
    }
}

/// The length of `n` bytes in padded base64.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Answers, comma-separated, in one buffer.
pub(super) struct Answers {
    /// JSON text: every piece written is a `str`, so the response needs no UTF-8 check.
    out: String,
    style: Style,
    /// Where the first answer starts: after `{"records":[` in a whole response, 0 in a part.
    first: usize,
}

impl Answers {
    /// A whole response: `{"records":[`, then answers.
    pub(super) fn response(capacity: usize, style: Style) -> Self {
        let mut out = String::with_capacity(capacity);
        out.push_str("{\"records\":[");
        let first = out.len();
        Answers { out, style, first }
    }

    /// A run of answers, to be appended to a response.
    pub(super) fn part(capacity: usize, style: Style) -> Self {
        Answers {
            out: String::with_capacity(capacity),
            style,
            first: 0,
        }
    }

    pub(super) fn style(&self) -> Style {
        self.style
    }

    /// The answers written so far.
    pub(super) fn text(&self) -> &str {
        &self.out
    }

    fn separate(&mut self) {
        if self.out.len() > self.first {
            self.out.push(',');
        }
    }

    /// Writes one answer; returns where it is in [`text`](Self::text).
    pub(super) fn write(
        &mut self,
        id: &str,
        plain_id: bool,
        result: &'static str,
        data: &[u8],
        keys: &[(&'static str, String)],
    ) -> Range<usize> {
        self.separate();
        let start = self.out.len();
        self.out.push_str("{\"recordId\":");
        if plain_id {
            self.out.push('"');
            self.out.push_str(id);
            self.out.push('"');
        } else {
            push_json_str(&mut self.out, id);
        }
        self.out.push_str(",\"result\":\"");
        self.out.push_str(result);
        self.out.push_str("\",\"data\":\"");
        base64_simd::STANDARD.encode_append(data, &mut self.out);
        self.out.push('"');
        if !keys.is_empty() || self.style == Style::Typed {
            self.out.push_str(",\"metadata\":{\"partitionKeys\":{");
            for (i, (k, v)) in keys.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                push_json_str(&mut self.out, k);
                self.out.push(':');
                push_json_str(&mut self.out, v);
            }
            self.out.push_str("}}");
        }
        self.out.push('}');
        start..self.out.len()
    }

    /// Removes every answer.
    pub(super) fn clear(&mut self) {
        self.out.truncate(self.first);
    }

    /// These answers as a whole response: themselves when they are one, else copied into a
    /// new one of `capacity` bytes.
    pub(super) fn into_response(self, capacity: usize) -> Answers {
        if self.first > 0 {
            return self;
        }
        let mut response = Answers::response(capacity, self.style);
        response.append(&self);
        response
    }

    /// Appends an answer written elsewhere.
    pub(super) fn copy(&mut self, answer: &str) {
        self.separate();
        self.out.push_str(answer);
    }

    /// Appends every answer of `part`.
    pub(super) fn append(&mut self, part: &Answers) {
        if part.out.len() > part.first {
            self.copy(&part.out[part.first..]);
        }
    }

    /// Closes the response.
    pub(super) fn finish(mut self) -> String {
        self.out.push_str("]}");
        self.out
    }
}

/// Appends `s` as a JSON string, escaped exactly as serde_json escapes it: `\"`, `\\`, the
/// short escapes `\b \f \n \r \t`, other control characters as `\u00xx`.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[plain..i]);
        plain = i + 1;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

/// The length of `s` as a JSON string, quotes included.
pub(super) fn json_len(s: &str) -> usize {
    // Ids and keys rarely need escapes: count them first (a loop the compiler vectorises).
    let special = s
        .bytes()
        .filter(|&b| b < 0x20 || b == b'"' || b == b'\\')
        .count();
    if special == 0 {
        return s.len() + 2;
    }
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

#[cfg(test)]
mod tests {
    use super::{Answers, Style, json_len, push_json_str};

    /// The sizes the budget is computed from are the sizes written.
    #[test]
    fn envelopes_and_costs_are_exact() {
        let keys = [("site", "ber\"lin".to_owned()), ("day", "1\n".to_owned())];
        for style in [Style::Raw, Style::Typed] {
            for id in ["4954", "a\"b\\c\u{1}"] {
                for plain in [false, true] {
                    if plain && id.contains('"') {
                        continue;
                    }
                    for (data, keys) in [
                        (&b""[..], &[][..]),
                        (b"x", &keys[..1]),
                        (b"{\"a\":1}\n", &keys[..]),
                    ] {
                        let mut a = Answers::response(64, style);
                        a.write("first", true, "Ok", b"", &[]);
                        let before = a.text().len();
                        a.write(id, plain, "ProcessingFailed", b"", &[]);
                        assert_eq!(a.text().len() - before, style.envelope(id, plain));
                        let before = a.text().len();
                        a.write(id, plain, "Ok", data, keys);
                        let written = a.text().len() - before;
                        let cost = style.output_cost(data.len(), keys);
                        let what = format!("{style:?} {id:?} {data:?} {keys:?}");
                        if cost > 0 {
                            assert_eq!(written, style.envelope(id, plain) + cost, "{what}");
                        } else {
                            // An empty `Ok` is shorter than its `ProcessingFailed` envelope.
                            assert!(written <= style.envelope(id, plain), "{what}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_typed_style_is_what_aws_lambda_events_writes() {
        use aws_lambda_events::firehose::KinesisFirehoseResponse;
        let mut a = Answers::response(64, Style::Typed);
        a.write("1", true, "Ok", b"{}\n", &[("site", "oslo".into())]);
        a.write("2", false, "Dropped", b"", &[]);
        let bytes = a.finish();
        let typed: KinesisFirehoseResponse = serde_json::from_str(&bytes).unwrap();
        assert_eq!(serde_json::to_string(&typed).unwrap(), bytes);
    }

    #[test]
    fn json_len_counts_escapes() {
        assert_eq!(json_len("ab"), 4);
        assert_eq!(json_len("a\"\\\n\u{1}é"), 2 + 1 + 2 + 2 + 2 + 6 + 2);
        assert_eq!(
            json_len("a\"\\\n\u{1}é"),
            serde_json::to_string("a\"\\\n\u{1}é").unwrap().len()
        );
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let all: String = (0u32..0x80).filter_map(char::from_u32).collect();
        for s in [
            all.as_str(),
            "",
            "plain",
            "é日本\u{2028}\u{7f}",
            "\"\\",
            "a\u{1}b\u{1f}",
        ] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
            assert_eq!(out.len(), json_len(s), "{s:?}");
        }
    }
}
