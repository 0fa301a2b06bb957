//! kpipe's record writer: a serde `Serializer` that writes the bytes serde_json's compact
//! `to_writer` writes, or gives up ([`Bail`]).
//!
//! serde_json (1.0, `serde_json::ser`) is the reference, method by method: integers with itoa
//! and floats with zmij (serde_json's own two), `null` for a float that is not finite, strings
//! escaped with its table (`\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters
//! as `\u00xx`, nothing else), bytes as an array of numbers, a struct as an object, an enum
//! variant as its name or an object of one key, a map key as a string (numbers and `bool`s
//! quoted). It gives up where serde_json fails or writes what only it writes (a key that
//! cannot be a string, a float key that is not finite, serde_json's `RawValue` and
//! `arbitrary_precision` numbers), and serde_json writes the record again. Its gain over
//! serde_json is the string scan: 16 bytes at a time, a struct's keys included.

use super::{Bail, is_serde_json_private, needs_escape};
use serde::ser::{self, Serialize};

type Result<T = ()> = std::result::Result<T, Bail>;

/// Appends `value`'s JSON to `out`, as `serde_json::to_writer` would, or gives up (`out` may
/// then hold part of it).
pub(super) fn into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result {
    value.serialize(&mut Writer { out })
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    /// `s` as a JSON string.
    #[inline]
    fn string(&mut self, s: &str) {
        let b = s.as_bytes();
        if needs_escape(b) {
            self.out.push(b'"');
            self.escaped(b);
            self.out.push(b'"');
            return;
        }
        let (len, n) = (self.out.len(), b.len());
        self.out.reserve(n + 2);
        // SAFETY: `reserve` made room for the `n + 2` bytes written after `len`, and the new
        // length covers exactly them.
        unsafe {
            let at = self.out.as_mut_ptr().add(len);
            at.write(b'"');
            std::ptr::copy_nonoverlapping(b.as_ptr(), at.add(1), n);
            at.add(n + 1).write(b'"');
            self.out.set_len(len + n + 2);
        }
    }

    /// The inside of a string with escapes.
    #[cold]
    fn escaped(&mut self, b: &[u8]) {
        let mut run = 0;
        for (i, &c) in b.iter().enumerate() {
            if c < 0x20 || c == b'"' || c == b'\\' {
                self.out.extend_from_slice(&b[run..i]);
                self.escape(c);
                run = i + 1;
            }
        }
        self.out.extend_from_slice(&b[run..]);
    }

    /// serde_json's escape of `c`, a quote, a backslash or a control character.
    fn escape(&mut self, c: u8) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let short = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            0x08 => b'b',
            0x0c => b'f',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            _ => {
                let hex = [HEX[usize::from(c >> 4)], HEX[usize::from(c & 0xf)]];
                self.out
                    .extend_from_slice(&[b'\\', b'u', b'0', b'0', hex[0], hex[1]]);
                return;
            }
        };
        self.out.extend_from_slice(&[b'\\', short]);
    }

    #[inline]
    fn integer(&mut self, n: impl itoa::Integer) {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(n).as_bytes();
        let (len, n) = (self.out.len(), digits.len());
        self.out.reserve(n);
        // SAFETY: `reserve` made room for the `n` bytes written after `len`; an integer has at
        // most 40 characters.
        unsafe {
            crate::bytes::copy_short(digits.as_ptr(), self.out.as_mut_ptr().add(len), n);
            self.out.set_len(len + n);
        }
    }

    /// A float as serde_json writes it: zmij's shortest form when it is `finite`, else `null`.
    #[inline]
    fn float(&mut self, f: impl zmij::Float, finite: bool) {
        if finite {
            let mut digits = zmij::Buffer::new();
            let (at, n) = {
                let s = digits.format_finite(f);
                (s.as_ptr(), s.len())
            };
            let whole = std::ptr::from_ref(&digits).cast::<u8>();
            let (len, size) = (self.out.len(), size_of::<zmij::Buffer>());
            self.out.reserve(size);
            // SAFETY: `reserve` made room for `size` bytes after `len`. zmij writes from its
            // buffer's start: then the whole buffer is copied (a fixed size, so no call to
            // `memcpy`; bytes past the number's may be uninitialised, which a copy allows)
            // and the length covers the number's `n`.
            unsafe {
                let to = self.out.as_mut_ptr().add(len);
                if at == whole {
                    std::ptr::copy_nonoverlapping(whole, to, size);
                } else {
                    std::ptr::copy_nonoverlapping(at, to, n);
                }
                self.out.set_len(len + n);
            }
        } else {
            self.out.extend_from_slice(b"null");
        }
    }

    /// Opens an object of one key, `variant`, for an enum variant with content.
    fn variant(&mut self, variant: &str) {
        self.out.push(b'{');
        self.string(variant);
        self.out.push(b':');
    }
}

/// The `serialize_*` methods of every integer type, each `|serializer, value| body`.
macro_rules! integers {
    (|$s:ident, $v:ident| $body:expr) => {
        integers!(@ $s $v $body; serialize_i8 i8, serialize_i16 i16, serialize_i32 i32,
            serialize_i64 i64, serialize_i128 i128, serialize_u8 u8, serialize_u16 u16,
            serialize_u32 u32, serialize_u64 u64, serialize_u128 u128);
    };
    (@ $s:ident $v:ident $body:expr; $($method:ident $t:ty),*) => {$(
        fn $method(self, $v: $t) -> Result {
            let $s = self;
            $body;
            Ok(())
        }
    )*};
}

impl<'a, 'b> ser::Serializer for &'b mut Writer<'a> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(|w, v| w.integer(v));
    fn serialize_f32(self, v: f32) -> Result {
        self.float(v, v.is_finite());
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result {
        self.float(v, v.is_finite());
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result {
        self.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    #[inline]
    fn serialize_str(self, v: &str) -> Result {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result {
        self.out.push(b'[');
        for (i, byte) in v.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            self.integer(*byte);
        }
        self.out.push(b']');
        Ok(())
    }
    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        self.variant(variant);
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a, 'b>> {
        Ok(Compound::open(self, b'[', b""))
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a, 'b>> {
        Ok(Compound::open(self, b'[', b""))
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a, 'b>> {
        Ok(Compound::open(self, b'[', b""))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'b>> {
        self.variant(variant);
        Ok(Compound::open(self, b'[', b"}"))
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a, 'b>> {
        Ok(Compound::open(self, b'{', b""))
    }
    #[inline]
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'a, 'b>> {
        if is_serde_json_private(name) {
            return Err(Bail);
        }
        Ok(Compound::open(self, b'{', b""))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a, 'b>> {
        self.variant(variant);
        Ok(Compound::open(self, b'{', b"}"))
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result {
        self.string(&value.to_string());
        Ok(())
    }
}

/// An array or object being written; `then`: what closes around it (the object of an enum
/// variant).
struct Compound<'a, 'b> {
    w: &'b mut Writer<'a>,
    first: bool,
    then: &'static [u8],
}

impl<'a, 'b> Compound<'a, 'b> {
    #[inline]
    fn open(w: &'b mut Writer<'a>, bracket: u8, then: &'static [u8]) -> Self {
        w.out.push(bracket);
        Compound {
            w,
            first: true,
            then,
        }
    }

    /// The comma before every item but the first.
    #[inline]
    fn comma(&mut self) {
        if !self.first {
            self.w.out.push(b',');
        }
        self.first = false;
    }

    #[inline]
    fn close(self, bracket: u8) -> Result {
        self.w.out.push(bracket);
        self.w.out.extend_from_slice(self.then);
        Ok(())
    }

    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.comma();
        value.serialize(&mut *self.w)
    }

    #[inline]
    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result {
        self.comma();
        self.w.string(key);
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }
}

/// The compounds written as arrays: elements, then `]`.
macro_rules! array_like {
    ($($trait:ident::$method:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Bail;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                self.element(value)
            }
            fn end(self) -> Result {
                self.close(b']')
            }
        }
    )*};
}

array_like!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Bail;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.comma();
        key.serialize(Key(&mut *self.w))
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.w.out.push(b':');
        value.serialize(&mut *self.w)
    }
    fn end(self) -> Result {
        self.close(b'}')
    }
}

/// The compounds written as objects of their fields, then `}`.
macro_rules! struct_like {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Bail;
            #[inline]
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result {
                self.field(key, value)
            }
            fn end(self) -> Result {
                self.close(b'}')
            }
        }
    )*};
}

struct_like!(SerializeStruct, SerializeStructVariant);

/// A map key (serde_json's `MapKeySerializer`): a string; numbers and `bool`s written inside
/// quotes; anything else gives up, for serde_json's "key must be a string".
struct Key<'a, 'b>(&'b mut Writer<'a>);

impl Key<'_, '_> {
    fn quoted(self, write: impl FnOnce(&mut Writer<'_>)) {
        self.0.out.push(b'"');
        write(self.0);
        self.0.out.push(b'"');
    }
}

/// `Key` methods that give up.
macro_rules! not_a_key {
    ($($method:ident($($arg:ty),*) -> $ok:ty;)*) => {$(
        fn $method(self, $(_: $arg),*) -> Result<$ok> {
            Err(Bail)
        }
    )*};
}

impl ser::Serializer for Key<'_, '_> {
    type Ok = ();
    type Error = Bail;
    type SerializeSeq = ser::Impossible<(), Bail>;
    type SerializeTuple = ser::Impossible<(), Bail>;
    type SerializeTupleStruct = ser::Impossible<(), Bail>;
    type SerializeTupleVariant = ser::Impossible<(), Bail>;
    type SerializeMap = ser::Impossible<(), Bail>;
    type SerializeStruct = ser::Impossible<(), Bail>;
    type SerializeStructVariant = ser::Impossible<(), Bail>;

    fn serialize_str(self, v: &str) -> Result {
        self.0.string(v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result {
        self.0.string(v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.0.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }
    fn serialize_bool(self, v: bool) -> Result {
        self.quoted(|w| w.out.extend_from_slice(if v { b"true" } else { b"false" }));
        Ok(())
    }
    integers!(|key, v| key.quoted(|w| w.integer(v)));
    fn serialize_f32(self, v: f32) -> Result {
        if !v.is_finite() {
            return Err(Bail);
        }
        self.quoted(|w| w.float(v, true));
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> Result {
        if !v.is_finite() {
            return Err(Bail);
        }
        self.quoted(|w| w.float(v, true));
        Ok(())
    }
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> Result {
        self.0.string(&value.to_string());
        Ok(())
    }

    not_a_key! {
        serialize_bytes(&[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(&'static str) -> ();
        serialize_seq(Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(usize) -> Self::SerializeTuple;
        serialize_tuple_struct(&'static str, usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(&'static str, u32, &'static str, usize) -> Self::SerializeTupleVariant;
        serialize_map(Option<usize>) -> Self::SerializeMap;
        serialize_struct(&'static str, usize) -> Self::SerializeStruct;
        serialize_struct_variant(&'static str, u32, &'static str, usize) -> Self::SerializeStructVariant;
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result {
        Err(Bail)
    }
}

#[cfg(test)]
mod tests {
    use super::into;
    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::Value;
    use std::collections::BTreeMap;

    #[derive(Clone, Debug, Serialize)]
    enum Kind {
        Unit,
        Newtype(f32),
        Tuple(i8, String),
        Struct { a: Option<u128>, b: char },
    }

    #[derive(Debug, Serialize)]
    struct Unit;

    #[derive(Debug, Serialize)]
    struct Pair(i64, bool);

    #[derive(Debug, Serialize)]
    struct Bytes(#[serde(with = "as_bytes")] Vec<u8>);

    mod as_bytes {
        pub(super) fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
    }

    #[derive(Debug, Serialize)]
    struct Shape {
        s: String,
        f: f64,
        g: f32,
        i: i128,
        kinds: Vec<Kind>,
        unit: Unit,
        pair: Pair,
        bytes: Bytes,
        by_number: BTreeMap<i32, Value>,
        by_bool: BTreeMap<bool, ()>,
        by_char: BTreeMap<char, u8>,
        by_kind: BTreeMap<String, Option<Kind>>,
        #[serde(flatten)]
        rest: BTreeMap<String, Value>,
        any: Value,
        shown: Shown,
    }

    /// Written with `collect_str`.
    #[derive(Debug)]
    struct Shown(String);

    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(&self.0)
        }
    }

    /// kpipe's writer writes what serde_json writes, or gives up; `encode` always writes
    /// what serde_json writes. `Ok(true)`: kpipe's writer wrote it.
    fn agree<T: Serialize + std::fmt::Debug>(value: &T) -> Result<bool, TestCaseError> {
        let theirs = serde_json::to_vec(value);
        let mut ours = b"[".to_vec();
        let wrote = into(value, &mut ours).is_ok();
        if wrote {
            let theirs = theirs.as_ref().map_err(|e| {
                TestCaseError::fail(format!("kpipe wrote {value:?}, serde_json failed: {e}"))
            })?;
            prop_assert_eq!(
                String::from_utf8_lossy(&ours[1..]),
                String::from_utf8_lossy(theirs)
            );
        }
        let mut out = b"kept".to_vec();
        match (super::super::encode(value, &mut out), theirs) {
            (Ok(()), Ok(theirs)) => prop_assert_eq!(&out[4..], &theirs[..]),
            (Err(a), Err(b)) => {
                prop_assert_eq!(a.to_string(), b.to_string());
                prop_assert_eq!(&out, b"kept");
            }
            (a, b) => prop_assert!(false, "encode {:?}, serde_json {:?}", a, b.map(|_| ())),
        }
        Ok(wrote)
    }

    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(
            r#"([a-z0-9 ]{0,20}|"|\\|/|\x00|\x08|\x0c|\n|\r|\t|\x1f|\x7f|é|€|😀|\u{2028}){0,8}"#,
        )
        .unwrap()
    }

    fn float() -> impl Strategy<Value = f64> {
        prop_oneof![
            any::<f64>(),
            (-1_000_000i64..1_000_000).prop_map(|n| n as f64 / 1000.0),
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            Just(1e21),
            Just(5e-324),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            float().prop_map(Value::from),
            text().prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 32, 5, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                proptest::collection::btree_map(text(), inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Unit),
            float().prop_map(|f| Kind::Newtype(f as f32)),
            (any::<i8>(), text()).prop_map(|(i, s)| Kind::Tuple(i, s)),
            (proptest::option::of(any::<u128>()), any::<char>())
                .prop_map(|(a, b)| Kind::Struct { a, b }),
        ]
    }

    fn shape() -> impl Strategy<Value = Shape> {
        (
            (
                text(),
                float(),
                float(),
                any::<i128>(),
                proptest::collection::vec(kind(), 0..4),
            ),
            (
                any::<i64>(),
                any::<bool>(),
                proptest::collection::vec(any::<u8>(), 0..5),
            ),
            (
                proptest::collection::btree_map(any::<i32>(), value(), 0..3),
                proptest::collection::btree_map(any::<bool>(), Just(()), 0..2),
                proptest::collection::btree_map(any::<char>(), any::<u8>(), 0..3),
                proptest::collection::btree_map(text(), proptest::option::of(kind()), 0..3),
            ),
            (
                proptest::collection::btree_map("x[a-z]{0,3}", value(), 0..3),
                value(),
                text(),
            ),
        )
            .prop_map(
                |((s, f, g, i, kinds), (p, q, bytes), maps, (rest, any, shown))| Shape {
                    s,
                    f,
                    g: g as f32,
                    i,
                    kinds,
                    unit: Unit,
                    pair: Pair(p, q),
                    bytes: Bytes(bytes),
                    by_number: maps.0,
                    by_bool: maps.1,
                    by_char: maps.2,
                    by_kind: maps.3,
                    rest,
                    any,
                    shown: Shown(shown),
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn records_are_written_as_serde_json_writes_them(shape in shape()) {
            prop_assert!(agree(&shape)?, "kpipe's writer gave up on {:?}", shape);
        }

        #[test]
        fn values_are_written_as_serde_json_writes_them(value in value()) {
            prop_assert!(agree(&value)?);
        }
    }

    /// What the writer leaves to serde_json: its errors, and what only it writes.
    #[test]
    fn the_rest_is_serde_json_s() {
        fn wrote<T: Serialize + std::fmt::Debug>(value: &T) -> bool {
            agree(value).unwrap()
        }
        /// A map of any keys.
        #[derive(Debug)]
        struct Entries<K>(Vec<(K, u8)>);
        impl<K: Serialize> Serialize for Entries<K> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
            }
        }
        assert!(!wrote(&Entries(vec![(vec![1u8], 1)])));
        assert!(!wrote(&Entries(vec![(Pair(1, true), 1)])));
        assert!(!wrote(&Entries(vec![(Kind::Newtype(1.0), 1)])));
        assert!(!wrote(&Entries(vec![(f64::NAN, 1)])));
        assert!(!wrote(&Entries(vec![(None::<u8>, 1)])));
        let raw = serde_json::value::RawValue::from_string("{ \"a\" : 1 }".into()).unwrap();
        assert!(!wrote(&raw));
        assert!(wrote(&Entries(vec![(Kind::Unit, 1), (Kind::Unit, 2)])));
        assert!(wrote(&Entries(vec![(Some(1.5f32), 1), (Some(-0.0), 2)])));
    }
}
