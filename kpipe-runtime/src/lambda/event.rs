//! Reading a Firehose transformation event in place (Amazon Data Firehose, Transform source
//! data: <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>): one pass
//! over the bytes that finds `deliveryStreamArn` and each record's `recordId` and `data`,
//! borrowed from the event, and skips everything else.
//!
//! The event is almost all base64 strings, which never hold an escape: one pass, 32 bytes at a
//! time with AVX2 (16 without), looks for the closing quote and for anything that is not
//! printable ASCII (a backslash, a control character, a byte of 0x80 or more); a string that
//! reaches its quote first is borrowed as it is. Any other string is read the careful way: UTF-8 checked, and
//! one with escapes handed to serde_json, which checks and unescapes it. Anything that is not
//! JSON, or not the event's shape, is an error naming what was expected and where, as a
//! general JSON reader's would be (the tests hold it to serde_json on generated and damaged
//! events).

use super::batch::Record;
use std::borrow::Cow;
use std::fmt;

/// How deep a value the reader skips may nest. Firehose's events nest four levels at most;
/// a limit of the handler's own keeps the stack small whatever comes in.
const MAX_SKIP_DEPTH: u32 = 32;

/// What the event holds that the handler reads, in the order it comes.
pub(super) enum Item<'a> {
    /// `deliveryStreamArn` (`None` for `null`).
    Arn(Option<Cow<'a, str>>),
    /// One of `records`.
    Record(Record<'a>),
}

/// Why the bytes are not a Firehose transformation event, and where (as serde_json says it:
/// line and column, from 1). Boxed, so that the reader's results fit in registers.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct EventError(Box<Where>);

#[derive(Debug, PartialEq, Eq)]
struct Where {
    what: String,
    line: usize,
    column: usize,
}

impl EventError {
    #[cold]
    #[inline(never)]
    fn at(what: String, event: &[u8], at: usize) -> EventError {
        let before = &event[..at.min(event.len())];
        let line_start = memchr::memrchr(b'\n', before).map_or(0, |i| i + 1);
        EventError(Box::new(Where {
            what,
            line: 1 + memchr::memchr_iter(b'\n', before).count(),
            column: 1 + at.min(event.len()) - line_start,
        }))
    }
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Where { what, line, column } = &*self.0;
        write!(f, "{what} at line {line} column {column}")
    }
}

impl std::error::Error for EventError {}

/// Reads `event`, handing `item` what the handler needs as it comes.
///
/// # Errors
/// The first thing that is not JSON or not the event's shape; items before it were handed on.
pub(super) fn read<'a>(event: &'a [u8], mut item: impl FnMut(Item<'a>)) -> Result<(), EventError> {
    let mut r = Reader { b: event, i: 0 };
    if r.peek()? != b'{' {
        return Err(r.error(
            "invalid type: expected a Firehose transformation event (an object with `records`)",
        ));
    }
    r.i += 1;
    r.entries(|r, key| {
        match &*key {
            "deliveryStreamArn" => {
                let arn = match r.peek()? {
                    b'n' => {
                        r.literal()?;
                        None
                    }
                    b'"' => Some(r.string()?.text),
                    _ => return Err(r.error("invalid type: expected a string or null")),
                };
                item(Item::Arn(arn));
            }
            "records" => r.records(&mut item)?,
            _ => r.skip(0)?,
        }
        Ok(())
    })?;
    r.skip_whitespace();
    if r.i < r.b.len() {
        return Err(r.error("trailing characters"));
    }
    Ok(())
}

/// A string read from the event.
struct Text<'a> {
    text: Cow<'a, str>,
    /// Borrowed as it is in the event: no escapes, so it needs none when written back.
    plain: bool,
}

/// What a record's key names.
#[derive(Clone, Copy)]
enum RecordKey {
    Id,
    Data,
    Other,
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    #[cold]
    fn error(&self, what: impl Into<String>) -> EventError {
        EventError::at(what.into(), self.b, self.i)
    }

    fn skip_whitespace(&mut self) {
        while self
            .b
            .get(self.i)
            .is_some_and(|c| matches!(c, b' ' | b'\n' | b'\r' | b'\t'))
        {
            self.i += 1;
        }
    }

    /// The next byte that is not whitespace.
    #[inline]
    fn peek(&mut self) -> Result<u8, EventError> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Ok(c);
            }
            self.i += 1;
        }
        Err(self.error("EOF while parsing a value"))
    }

    #[inline]
    fn colon(&mut self) -> Result<(), EventError> {
        if self.peek()? != b':' {
            return Err(self.error("expected `:`"));
        }
        self.i += 1;
        Ok(())
    }

    /// Just inside `{` or `[`: whether an entry follows (else `end` is taken).
    #[inline]
    fn entry_or_end(&mut self, end: u8) -> Result<bool, EventError> {
        if self.peek()? == end {
            self.i += 1;
            return Ok(false);
        }
        if end == b'}' && self.peek()? != b'"' {
            return Err(self.error("key must be a string"));
        }
        Ok(true)
    }

    /// After an entry: whether another follows (`,` taken), or `end` (taken).
    #[inline]
    fn next_or_end(&mut self, end: u8) -> Result<bool, EventError> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                if end == b'}' && self.peek()? != b'"' {
                    return Err(self.error("key must be a string"));
                }
                Ok(true)
            }
            c if c == end => {
                self.i += 1;
                Ok(false)
            }
            _ => Err(self.error(if end == b'}' {
                "expected `,` or `}`"
            } else {
                "expected `,` or `]`"
            })),
        }
    }

    /// A string, at its opening quote.
    #[inline]
    fn string(&mut self) -> Result<Text<'a>, EventError> {
        if self.peek()? != b'"' {
            return Err(self.error("invalid type: expected a string"));
        }
        let start = self.i + 1;
        if let Some(end) = crate::json::first_special(self.b, start)
            && self.b[end] == b'"'
        {
            self.i = end + 1;
            // SAFETY: every byte before the quote is printable ASCII.
            let text = unsafe { std::str::from_utf8_unchecked(&self.b[start..end]) };
            return Ok(Text {
                text: Cow::Borrowed(text),
                plain: true,
            });
        }
        self.string_with_escapes_or_not_ascii(start)
    }

    /// The rest of [`Reader::string`]: a string with escapes, other than ASCII, or not ended.
    #[inline(never)]
    fn string_with_escapes_or_not_ascii(&mut self, start: usize) -> Result<Text<'a>, EventError> {
        let mut end = start;
        let mut escaped = false;
        loop {
            match memchr::memchr2(b'"', b'\\', &self.b[end..]) {
                None => {
                    self.i = self.b.len();
                    return Err(self.error("EOF while parsing a string"));
                }
                Some(k) if self.b[end + k] == b'"' => {
                    end += k;
                    break;
                }
                // A backslash and the character it escapes (never the closing quote);
                // serde_json checks the escape below.
                Some(k) => {
                    escaped = true;
                    end += k + 2;
                    if end > self.b.len() {
                        self.i = self.b.len();
                        return Err(self.error("EOF while parsing a string"));
                    }
                }
            }
        }
        if escaped {
            let text: String = serde_json::from_slice(&self.b[start - 1..=end])
                .map_err(|e| EventError::at(format!("invalid string ({e})"), self.b, start))?;
            self.i = end + 1;
            return Ok(Text {
                text: Cow::Owned(text),
                plain: false,
            });
        }
        let raw = &self.b[start..end];
        if let Some(k) = raw.iter().position(|&c| c < 0x20) {
            self.i = start + k;
            return Err(
                self.error("control character (\\u0000-\\u001F) found while parsing a string")
            );
        }
        let text = std::str::from_utf8(raw).map_err(|e| {
            self.i = start + e.valid_up_to();
            self.error("invalid unicode code point")
        })?;
        self.i = end + 1;
        Ok(Text {
            text: Cow::Borrowed(text),
            plain: true,
        })
    }

    /// `true`, `false` or `null`.
    fn literal(&mut self) -> Result<(), EventError> {
        let rest = &self.b[self.i..];
        for word in [&b"true"[..], b"false", b"null"] {
            if rest.starts_with(word) {
                self.i += word.len();
                return Ok(());
            }
        }
        Err(self.error("expected value"))
    }

    /// A number, as JSON writes them: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Result<(), EventError> {
        let digits = |r: &mut Self| {
            let from = r.i;
            r.i = digits_end(r.b, r.i);
            r.i > from
        };
        if self.b.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return Err(self.error("invalid number")),
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if !digits(self) {
                return Err(self.error("invalid number"));
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return Err(self.error("invalid number"));
            }
        }
        Ok(())
    }

    /// An object's entries, just inside its `{`: `entry` gets each key once its `:` is read,
    /// and reads the value.
    fn entries(
        &mut self,
        mut entry: impl FnMut(&mut Self, Cow<'a, str>) -> Result<(), EventError>,
    ) -> Result<(), EventError> {
        let mut more = self.entry_or_end(b'}')?;
        while more {
            let key = self.string()?.text;
            self.colon()?;
            entry(self, key)?;
            more = self.next_or_end(b'}')?;
        }
        Ok(())
    }

    /// Skips a value the handler does not read, refusing one nested deeper than
    /// [`MAX_SKIP_DEPTH`].
    fn skip(&mut self, depth: u32) -> Result<(), EventError> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => self.number(),
            b't' | b'f' | b'n' => self.literal(),
            open @ (b'{' | b'[') => {
                if depth >= MAX_SKIP_DEPTH {
                    return Err(self.error(format!(
                        "a value nested more than {MAX_SKIP_DEPTH} levels deep"
                    )));
                }
                self.i += 1;
                if open == b'{' {
                    return self.entries(|r, _| r.skip(depth + 1));
                }
                let mut more = self.entry_or_end(b']')?;
                while more {
                    self.skip(depth + 1)?;
                    more = self.next_or_end(b']')?;
                }
                Ok(())
            }
            _ => Err(self.error("expected value")),
        }
    }

    /// The `records` array, each record handed on as it is read.
    fn records(&mut self, item: &mut impl FnMut(Item<'a>)) -> Result<(), EventError> {
        if self.peek()? != b'[' {
            return Err(self.error("invalid type: expected an array of records"));
        }
        self.i += 1;
        if !self.entry_or_end(b']')? {
            return Ok(());
        }
        loop {
            item(Item::Record(self.record()?));
            if !self.next_or_end(b']')? {
                return Ok(());
            }
        }
    }

    /// One record: `recordId` and `data` (empty when missing), other fields skipped.
    /// A record's key and its colon. Firehose's own keys are matched in place, closing quote
    /// included; any other key is read as a string.
    #[inline]
    fn record_key(&mut self) -> Result<RecordKey, EventError> {
        /// Firehose's keys, quotes included.
        const DATA: &[u8] = b"\"data\"";
        const ID: &[u8] = b"\"recordId\"";
        const ARRIVAL: &[u8] = b"\"approximateArrivalTimestamp\"";
        let rest = &self.b[self.i..];
        // The first letter picks the one key to compare.
        let known = match rest.get(1) {
            Some(b'd') if rest.starts_with(DATA) => Some((DATA.len(), RecordKey::Data)),
            Some(b'r') if rest.starts_with(ID) => Some((ID.len(), RecordKey::Id)),
            Some(b'a') if rest.starts_with(ARRIVAL) => Some((ARRIVAL.len(), RecordKey::Other)),
            _ => None,
        };
        let key = match known {
            Some((len, key)) => {
                self.i += len;
                key
            }
            None => match &*self.string()?.text {
                "recordId" => RecordKey::Id,
                "data" => RecordKey::Data,
                _ => RecordKey::Other,
            },
        };
        self.colon()?;
        Ok(key)
    }

    fn record(&mut self) -> Result<Record<'a>, EventError> {
        if self.peek()? != b'{' {
            return Err(self
                .error("invalid type: expected a record (an object with `recordId` and `data`)"));
        }
        self.i += 1;
        let mut record = Record {
            id: Cow::Borrowed(""),
            plain_id: true,
            data: Cow::Borrowed(""),
        };
        let mut more = self.entry_or_end(b'}')?;
        while more {
            match self.record_key()? {
                RecordKey::Id => {
                    let id = self.string()?;
                    record.plain_id = id.plain;
                    record.id = id.text;
                }
                RecordKey::Data => record.data = self.string()?.text,
                RecordKey::Other => self.skip(0)?,
            }
            more = self.next_or_end(b'}')?;
        }
        Ok(record)
    }
}

/// Where the run of ASCII digits from `i` ends: eight bytes at a time (an arrival timestamp
/// has thirteen digits), then one at a time.
fn digits_end(b: &[u8], mut i: usize) -> usize {
    const HIGH: u64 = 0xf0f0_f0f0_f0f0_f0f0;
    const THREES: u64 = 0x3030_3030_3030_3030;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().expect("eight bytes"));
        // A byte is a digit when its high nibble is 3, and still is after adding 6 (0x3a..
        // is not). Adding carries only into higher bytes, past the first that is not a digit.
        let not_digits =
            (w & HIGH ^ THREES) | (w.wrapping_add(0x0606_0606_0606_0606) & HIGH ^ THREES);
        if not_digits != 0 {
            return i + (not_digits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// What the reader hands on, owned: `(arn)` or `(id, plain id, data)`.
    #[derive(Debug, PartialEq)]
    enum Got {
        Arn(Option<String>),
        Record(String, bool, String),
    }

    fn read_all(event: &[u8]) -> Result<Vec<Got>, EventError> {
        let mut got = Vec::new();
        read(event, |item| {
            got.push(match item {
                Item::Arn(arn) => Got::Arn(arn.map(Cow::into_owned)),
                Item::Record(r) => Got::Record(r.id.into_owned(), r.plain_id, r.data.into_owned()),
            });
        })?;
        Ok(got)
    }

    /// The ARNs and the `(id, data)` of the records an event holds.
    type Found = (Vec<Option<String>>, Vec<(String, String)>);

    /// What a reader of the event's shape on top of serde_json finds (`None`: not the shape).
    fn reference(v: &Value) -> Option<Found> {
        let top = v.as_object()?;
        let mut arns = Vec::new();
        let mut records = Vec::new();
        for (key, value) in top {
            match key.as_str() {
                "deliveryStreamArn" => match value {
                    Value::Null => arns.push(None),
                    Value::String(s) => arns.push(Some(s.clone())),
                    _ => return None,
                },
                "records" => {
                    for r in value.as_array()? {
                        let r = r.as_object()?;
                        let text = |k: &str| match r.get(k) {
                            None => Some(String::new()),
                            Some(Value::String(s)) => Some(s.clone()),
                            Some(_) => None,
                        };
                        records.push((text("recordId")?, text("data")?));
                    }
                }
                _ => {}
            }
        }
        Some((arns, records))
    }

    fn split(got: Vec<Got>) -> Found {
        let mut arns = Vec::new();
        let mut records = Vec::new();
        for g in got {
            match g {
                Got::Arn(a) => arns.push(a),
                Got::Record(id, _, data) => records.push((id, data)),
            }
        }
        (arns, records)
    }

    #[test]
    fn an_event_is_read_in_place_in_the_order_it_comes() {
        let event = br#" { "invocationId" : "i-1", "records" : [
            {"recordId":"r1","approximateArrivalTimestamp":1.5e3,"data":"eyJ4IjoxfQ==",
             "kinesisRecordMetadata":{"shardId":"s","x":[1,-0.25,true,false,null,{}]}},
            {"data":"","recordId":"r\"2\u00e9"},
            {}
          ], "deliveryStreamArn": "arn:aws:firehose:us-west-2:1:deliverystream/d", "region": null }
        "#;
        assert_eq!(
            read_all(event).unwrap(),
            vec![
                Got::Record("r1".into(), true, "eyJ4IjoxfQ==".into()),
                Got::Record("r\"2é".into(), false, String::new()),
                Got::Record(String::new(), true, String::new()),
                Got::Arn(Some("arn:aws:firehose:us-west-2:1:deliverystream/d".into())),
            ]
        );
        // Strings are borrowed from the event when they have no escapes.
        read(br#"{"records":[{"recordId":"a","data":"QQ=="}]}"#, |item| {
            let Item::Record(r) = item else {
                panic!("a record")
            };
            assert!(matches!(
                (r.id, r.data),
                (Cow::Borrowed(_), Cow::Borrowed(_))
            ));
        })
        .unwrap();
    }

    #[test]
    fn what_is_not_json_or_not_the_shape_says_what_and_where() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "EOF while parsing a value at line 1 column 1"),
            (
                b"[]",
                "invalid type: expected a Firehose transformation event",
            ),
            (
                b"{\"records\":{}}",
                "invalid type: expected an array of records at line 1 column 12",
            ),
            (b"{\"records\":[1]}", "invalid type: expected a record"),
            (
                b"{\"records\":[{\"data\":1}]}",
                "invalid type: expected a string at line 1 column 21",
            ),
            (
                b"{\"deliveryStreamArn\":7}",
                "invalid type: expected a string or null",
            ),
            (
                b"{\"records\":[]} x",
                "trailing characters at line 1 column 16",
            ),
            (b"{\"records\":[],}", "key must be a string"),
            (b"{\"a\":01}", "expected `,` or `}`"),
            (b"{\"a\":-}", "invalid number"),
            (b"{\"a\":1.}", "invalid number"),
            (b"{\"a\":tru}", "expected value"),
            (b"{\"a\":\"x\ny\"}", "control character"),
            (b"{\"a\":\"\\q\"}", "invalid string"),
            (b"{\"a\":\"\xff\"}", "invalid unicode code point"),
            (b"{\"a\":\"abc", "EOF while parsing a string"),
            (b"{\n\"a\"\n1}", "expected `:` at line 3 column 1"),
        ];
        for (event, message) in cases {
            let e = read_all(event).unwrap_err().to_string();
            assert!(
                e.contains(message),
                "{}: {e}",
                String::from_utf8_lossy(event)
            );
            assert!(
                serde_json::from_slice::<Value>(event).is_err()
                    || reference(&serde_json::from_slice(event).unwrap()).is_none(),
                "{}",
                String::from_utf8_lossy(event)
            );
        }
        let deep = format!(r#"{{"x":{}{}}}"#, "[".repeat(33), "]".repeat(33));
        assert!(
            read_all(deep.as_bytes())
                .unwrap_err()
                .to_string()
                .contains("nested more than 32")
        );
        let ok = format!(r#"{{"x":{}{}}}"#, "[".repeat(32), "]".repeat(32));
        assert_eq!(read_all(ok.as_bytes()).unwrap(), vec![]);
    }

    /// Strings with what JSON must escape, and some it may.
    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(r#"([a-zA-Z0-9+/=_-]|"|\\|/|\n|\t|\x01|é|€|😀){0,12}"#)
            .unwrap()
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e9f64..1e9).prop_map(|f| json!(f)),
            text().prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                proptest::collection::btree_map(text(), inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A record's fields in some order: id, data, and others.
    fn record() -> impl Strategy<Value = (Vec<(String, Value)>, String, String)> {
        (
            text(),
            text(),
            proptest::collection::vec((text(), value()), 0..3),
            any::<u8>(),
        )
            .prop_map(|(id, data, others, order)| {
                let mut fields: Vec<(String, Value)> = others
                    .into_iter()
                    .filter(|(k, _)| k != "recordId" && k != "data")
                    .collect();
                if order % 3 == 0 {
                    // Firehose's own layout: id, arrival time, data, then others.
                    let arrival = if order % 2 == 0 {
                        json!(1_795_766_400_000i64)
                    } else {
                        json!(-1.5e3)
                    };
                    let mut firehose = vec![
                        ("recordId".into(), Value::from(id.clone())),
                        ("approximateArrivalTimestamp".into(), arrival),
                        ("data".into(), Value::from(data.clone())),
                    ];
                    firehose.extend(fields);
                    return (firehose, id, data);
                }
                let at = usize::from(order) % (fields.len() + 1);
                fields.insert(at, ("recordId".into(), Value::from(id.clone())));
                fields.push(("data".into(), Value::from(data.clone())));
                if order % 2 == 0 {
                    fields.reverse();
                }
                (fields, id, data)
            })
    }

    /// JSON text of an object whose entries keep their order, with `gap` between tokens.
    fn object(entries: &[(String, String)], gap: &str) -> String {
        let inner: Vec<String> = entries
            .iter()
            .map(|(k, v)| format!("{}{gap}:{gap}{v}", serde_json::to_string(k).unwrap()))
            .collect();
        format!("{{{gap}{}{gap}}}", inner.join(&format!("{gap},{gap}")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Generated events: the reader hands on what serde_json reads, in order, and borrows
        /// every string written without escapes.
        #[test]
        fn generated_events_read_as_serde_json_reads_them(
            records in proptest::collection::vec(record(), 0..6),
            arn in proptest::option::of(text()),
            others in proptest::collection::vec((text(), value()), 0..3),
            gap in prop_oneof![Just(""), Just(" "), Just("\n\t "), Just("\r\n")],
            pretty in any::<bool>(),
        ) {
            let write = |v: &Value| if pretty {
                serde_json::to_string_pretty(v).unwrap()
            } else {
                serde_json::to_string(v).unwrap()
            };
            let texts: Vec<String> = records
                .iter()
                .map(|(fields, _, _)| {
                    let fields: Vec<(String, String)> =
                        fields.iter().map(|(k, v)| (k.clone(), write(v))).collect();
                    object(&fields, gap)
                })
                .collect();
            let mut top: Vec<(String, String)> = others
                .into_iter()
                .filter(|(k, _)| k != "records" && k != "deliveryStreamArn")
                .map(|(k, v)| (k, write(&v)))
                .collect();
            top.push(("records".into(), format!("[{gap}{}{gap}]", texts.join(&format!(",{gap}")))));
            top.push(("deliveryStreamArn".into(), write(&arn.clone().map_or(Value::Null, Value::from))));
            let event = object(&top, gap);
            let mut expected: Vec<Got> = records
                .iter()
                .map(|(_, id, data)| {
                    let plain = !serde_json::to_string(id).unwrap().contains('\\');
                    Got::Record(id.clone(), plain, data.clone())
                })
                .collect();
            expected.push(Got::Arn(arn));
            prop_assert_eq!(read_all(event.as_bytes()).unwrap(), expected);
        }

        /// Damaged events: whatever serde_json refuses, the reader refuses; what it reads as
        /// the event's shape, the reader reads the same.
        #[test]
        fn damaged_events_are_refused_as_serde_json_refuses_them(
            records in proptest::collection::vec(record(), 1..4),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![
                Just(b'"'), Just(b'\\'), Just(b'{'), Just(b'}'), Just(b'['), Just(b']'),
                Just(b','), Just(b':'), Just(b'0'), Just(b'-'), Just(b'.'), Just(b'e'),
                Just(b' '), Just(b'n'), Just(0x01), Just(0xC3), Just(0xFF),
            ],
            how in 0..3u8,
        ) {
            // Written compactly, keys in the records' own order (Firehose's layout among them).
            let recs: Vec<String> = records
                .iter()
                .map(|(fields, _, _)| {
                    let fields: Vec<(String, String)> = fields
                        .iter()
                        .map(|(k, v)| (k.clone(), serde_json::to_string(v).unwrap()))
                        .collect();
                    object(&fields, "")
                })
                .collect();
            let mut event = format!("{{\"records\":[{}]}}", recs.join(",")).into_bytes();
            let i = at.index(event.len());
            match how {
                0 => { event.remove(i); }
                1 => event.insert(i, byte),
                _ => event[i] = byte,
            }
            let ours = read_all(&event);
            let theirs = serde_json::from_slice::<Value>(&event);
            // JSON's grammar has no limit on numbers; serde_json refuses what does not fit an
            // f64, the reader skips it as any other number.
            prop_assume!(!theirs.as_ref().is_err_and(|e| e.to_string().contains("out of range")));
            match theirs.ok().as_ref().and_then(reference) {
                None => prop_assert!(ours.is_err(), "accepted {}", String::from_utf8_lossy(&event)),
                Some(expected) => prop_assert_eq!(split(ours.unwrap()), expected),
            }
        }
    }

    #[test]
    fn digits_end_at_the_first_other_byte() {
        for len in 0..24 {
            for other in 0..=255u8 {
                let mut b = vec![b'7'; len];
                b.push(other);
                b.extend_from_slice(b"12345678");
                let end = super::digits_end(&b, 0);
                let expected = if other.is_ascii_digit() { b.len() } else { len };
                assert_eq!(end, expected, "{len} digits, then {other:#x}");
            }
        }
    }
}
