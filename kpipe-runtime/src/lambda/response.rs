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

/// How a response starts.
const RESPONSE_START: &str = "{\"records\":[";

/// How a response ends.
const RESPONSE_END: &str = "]}";

/// A Firehose response's JSON text, in pieces: their concatenation, in order, is the response
/// ([`FirehoseHandler::handle_json`](super::FirehoseHandler::handle_json) returns it joined).
/// Answers written on several threads stay in the buffers they were written in; the Lambda
/// binary posts the pieces as one body (with their total length), without joining them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseText {
    pieces: Vec<String>,
}

impl ResponseText {
    /// The response's length in bytes.
    pub fn len(&self) -> usize {
        self.pieces.iter().map(String::len).sum()
    }

    /// Whether the response is empty (it never is: it is at least `{"records":[]}`).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> &[String] {
        &self.pieces
    }

    /// The response as one text (no copy when it is one piece, as on one thread; else one
    /// allocation of the whole length).
    pub fn into_string(mut self) -> String {
        if self.pieces.len() == 1 {
            return self.pieces.pop().unwrap_or_default();
        }
        self.pieces.concat()
    }
}

impl From<ResponseText> for lambda_runtime_api_client::body::Body {
    /// One body for all the pieces, each sent from its own buffer, with the total length
    /// known up front (so it is posted with `Content-Length`, as a single text would be).
    fn from(text: ResponseText) -> Self {
        lambda_runtime_api_client::body::Body::new(Pieces {
            remaining: text.len() as u64,
            pieces: text.pieces.into_iter().map(bytes::Bytes::from).collect(),
        })
    }
}

/// [`ResponseText`] as an HTTP body: one frame per piece.
struct Pieces {
    pieces: std::collections::VecDeque<bytes::Bytes>,
    remaining: u64,
}

impl http_body::Body for Pieces {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        let piece = self.pieces.pop_front();
        if let Some(piece) = &piece {
            self.remaining -= piece.len() as u64;
        }
        std::task::Poll::Ready(piece.map(|p| Ok(http_body::Frame::data(p))))
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
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
        out.push_str(RESPONSE_START);
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
        super::base64::encode_append(data, &mut self.out);
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

    /// Joins answers written in parts into one response, without copying them: the parts'
    /// buffers become pieces of the response's text, in order (`parts` in event order; the
    /// first may be a whole response's beginning).
    pub(super) fn join(parts: impl IntoIterator<Item = Answers>) -> ResponseText {
        let mut pieces = Vec::new();
        let mut answered = false;
        for part in parts {
            let has_answers = part.out.len() > part.first;
            if part.first > 0 && pieces.is_empty() {
                answered = has_answers;
                pieces.push(part.out);
                continue;
            }
            if !has_answers {
                continue;
            }
            if pieces.is_empty() {
                pieces.push(RESPONSE_START.to_owned());
            }
            if answered {
                pieces.push(",".to_owned());
            }
            answered = true;
            pieces.push(if part.first == 0 {
                part.out
            } else {
                part.out[part.first..].to_owned()
            });
        }
        match pieces.as_mut_slice() {
            [] => pieces.push(format!("{RESPONSE_START}{RESPONSE_END}")),
            [whole] => whole.push_str(RESPONSE_END),
            _ => pieces.push(RESPONSE_END.to_owned()),
        }
        ResponseText { pieces }
    }

    /// Appends an answer written elsewhere.
    pub(super) fn copy(&mut self, answer: &str) {
        self.separate();
        self.out.push_str(answer);
    }

    /// Closes the response.
    pub(super) fn finish(mut self) -> ResponseText {
        self.out.push_str(RESPONSE_END);
        ResponseText {
            pieces: vec![self.out],
        }
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
        let bytes = a.finish().into_string();
        let typed: KinesisFirehoseResponse = serde_json::from_str(&bytes).unwrap();
        assert_eq!(serde_json::to_string(&typed).unwrap(), bytes);
    }

    /// Answers written in parts (any split, empty parts included, the first part a whole
    /// response or not) join into the text one buffer gets, and post as that text with its
    /// exact length.
    #[tokio::test]
    async fn parts_join_into_what_one_buffer_writes() {
        let answers: Vec<(String, &str)> = (0..7)
            .map(|i| (format!("id-{i}"), ["Ok", "Dropped"][i % 2]))
            .collect();
        let write = |a: &mut Answers, range: std::ops::Range<usize>| {
            for (id, result) in &answers[range] {
                a.write(id, true, result, id.as_bytes(), &[]);
            }
        };
        let mut whole = Answers::response(0, Style::Raw);
        write(&mut whole, 0..answers.len());
        let expected = whole.finish().into_string();
        for cuts in [
            vec![],
            vec![0],
            vec![3],
            vec![0, 0, 7],
            vec![2, 2, 5],
            vec![7, 7],
        ] {
            for first_whole in [false, true] {
                let mut bounds = vec![0];
                bounds.extend(&cuts);
                bounds.push(answers.len());
                let parts: Vec<Answers> = bounds
                    .windows(2)
                    .enumerate()
                    .map(|(i, w)| {
                        let mut a = if i == 0 && first_whole {
                            Answers::response(0, Style::Raw)
                        } else {
                            Answers::part(0, Style::Raw)
                        };
                        write(&mut a, w[0]..w[1]);
                        a
                    })
                    .collect();
                let text = Answers::join(parts);
                let body = lambda_runtime_api_client::body::Body::from(text.clone());
                assert_eq!(
                    http_body::Body::size_hint(&body).exact(),
                    Some(expected.len() as u64)
                );
                let posted = body.collect().await.unwrap().to_bytes();
                assert_eq!(posted, expected.as_bytes(), "{cuts:?} {first_whole}");
                assert_eq!(text.into_string(), expected, "{cuts:?} {first_whole}");
            }
        }
        let none = Answers::join(Vec::new());
        assert_eq!(none.into_string(), "{\"records\":[]}");
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
