//! kpipe's record reader: a serde `Deserializer` over JSON text that makes, on what it reads,
//! the calls serde_json's `from_slice` makes, and gives up ([`Bail`]) on everything else.
//!
//! It reads objects, arrays, `true`, `false`, `null`, strings (escapes included) and numbers
//! of up to 19 digits without an exponent. serde_json (1.0, `serde_json::de`) is the
//! reference, method by method: the same visitor call for each value (`visit_borrowed_str`
//! for a string without escapes, `visit_str` for one with; `visit_u64` for an integer,
//! `visit_i64` for a negative one, `visit_f64` for a decimal or `-0`), the same value
//! accepted where a type is asked for (a struct from an object or an array, an enum from a
//! string or a one-key object, a map key as a string), the same grammar. Where serde_json
//! would fail, or reads in a way this reader does not (exponents, longer numbers, lone
//! surrogates, numeric map keys, bytes, 128-bit integers, `f32` decimals, `RawValue`, nesting
//! deeper than [`MAX_DEPTH`]), it gives up and serde_json reads the record again from the start.
//!
//! Decimals: a decimal of at most 2^53 as an integer of digits and at most 22 of them after
//! the point is that integer divided by a power of ten, both exact as `f64`, so one
//! correctly rounded division: serde_json computes exactly that (`f64_from_parts`), with or
//! without its `float_roundtrip` feature. Longer ones are serde_json's.

use super::{Bail, first_special, is_serde_json_private};
use serde::de::{self, DeserializeSeed, Visitor};

type Result<T> = std::result::Result<T, Bail>;

/// How deep the reader nests before leaving a record to serde_json (whose limit is 128).
const MAX_DEPTH: u32 = 100;

/// Powers of ten exact as `f64` (all up to 10^22; a decimal here has at most 18 digits after
/// the point).
const POW10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];

/// Whether this build's serde_json reads numbers as the reader does. With serde_json's
/// `arbitrary_precision` feature (turned on by any crate of the build) a number keeps its
/// digits (`1.50` stays `1.50`), which the reader does not do; it then leaves every record to
/// serde_json.
pub(super) fn agrees_with_serde_json() -> bool {
    static AGREES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AGREES.get_or_init(|| {
        serde_json::from_str::<serde_json::Number>("1.50").is_ok_and(|n| n.to_string() == "1.5")
    })
}

/// Reads a `T` from all of `text`, as `serde_json::from_slice` does, or gives up.
///
/// JSON text is UTF-8, but only strings can hold anything else than ASCII (anywhere else it
/// is an error): a string in which the scan meets a byte of 0x80 or more is checked as UTF-8
/// (with simdutf8), and no other byte needs to be.
pub(super) fn from_slice<'de, T: de::Deserialize<'de>>(text: &'de [u8]) -> Result<T> {
    let mut reader = Reader {
        b: text,
        i: 0,
        depth: 0,
        scratch: String::new(),
    };
    let value = T::deserialize(&mut reader)?;
    // Only whitespace may follow (serde_json's `Deserializer::end`).
    match reader.peek() {
        None => Ok(value),
        Some(_) => Err(Bail),
    }
}

struct Reader<'de> {
    b: &'de [u8],
    /// The next byte to read.
    i: usize,
    /// Arrays, objects and enum objects open around `i`.
    depth: u32,
    /// A string with escapes, unescaped.
    scratch: String,
}

/// A string read: borrowed from the text, or unescaped into the scratch buffer.
enum Str<'de, 's> {
    Borrowed(&'de str),
    Copied(&'s str),
}

/// Hands a string read to `visitor` as serde_json does: borrowed when it can be.
#[inline]
fn visit_str<'de, V: Visitor<'de>>(s: Str<'de, '_>, visitor: V) -> Result<V::Value> {
    match s {
        Str::Borrowed(s) => visitor.visit_borrowed_str(s),
        Str::Copied(s) => visitor.visit_str(s),
    }
}

/// A number as serde_json hands it to a visitor (`ParserNumber`).
enum Number {
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Number {
    #[inline]
    fn visit<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self {
            Number::U64(n) => visitor.visit_u64(n),
            Number::I64(n) => visitor.visit_i64(n),
            Number::F64(n) => visitor.visit_f64(n),
        }
    }
}

impl<'de> Reader<'de> {
    /// The next byte past JSON's whitespace, not taken.
    #[inline]
    fn peek(&mut self) -> Option<u8> {
        let b = self.b;
        while let Some(&c) = b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    /// [`Reader::peek`], where a value must follow.
    #[inline]
    fn peek_value(&mut self) -> Result<u8> {
        self.peek().ok_or(Bail)
    }

    /// Takes the comma at `i`; the next byte past whitespace, not taken.
    #[inline]
    fn after_comma(&mut self) -> Result<u8> {
        self.i += 1;
        self.peek_value()
    }

    /// `word` (`null`, `true`, `false`) at `i`.
    #[inline]
    fn word(&mut self, word: &[u8]) -> Result<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// Takes `c`, the next byte past whitespace.
    #[inline]
    fn expect(&mut self, c: u8) -> Result<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Bail)
        }
    }

    /// A string, at its opening quote. Most are printable ASCII up to the closing quote, found
    /// in one scan and borrowed; bytes of 0x80 and more are passed over and the string checked
    /// as UTF-8 at its end; a backslash starts the unescaping.
    #[inline(always)]
    fn string(&mut self) -> Result<Str<'de, '_>> {
        let b = self.b;
        let start = self.i + 1;
        let mut at = start;
        let mut ascii = true;
        loop {
            let end = first_special(b, at).ok_or(Bail)?;
            match b[end] {
                b'"' => {
                    self.i = end + 1;
                    let text = if ascii {
                        // SAFETY: every byte from `start` to `end` is ASCII.
                        unsafe { std::str::from_utf8_unchecked(&b[start..end]) }
                    } else {
                        utf8(&b[start..end])?
                    };
                    return Ok(Str::Borrowed(text));
                }
                b'\\' => return self.unescape(start, end),
                0x80.. => {
                    ascii = false;
                    at = end + 1;
                }
                // A control character, which JSON strings may not hold.
                _ => return Err(Bail),
            }
        }
    }

    /// The rest of [`Reader::string`] from the first backslash, at `at`, into the scratch
    /// buffer (serde_json's `parse_str`; a lone surrogate is left to it).
    #[inline(never)]
    fn unescape(&mut self, start: usize, mut at: usize) -> Result<Str<'de, '_>> {
        let b = self.b;
        self.scratch.clear();
        let mut run = start;
        loop {
            match b[at] {
                b'"' => {
                    self.scratch.push_str(utf8(&b[run..at])?);
                    self.i = at + 1;
                    return Ok(Str::Copied(&self.scratch));
                }
                b'\\' => {
                    self.scratch.push_str(utf8(&b[run..at])?);
                    let c = match b.get(at + 1).ok_or(Bail)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\x08',
                        b'f' => '\x0c',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let unit = hex4(b, at + 2)?;
                            at += 4;
                            match unit {
                                0xD800..=0xDBFF => {
                                    if b.get(at + 2..at + 4) != Some(&b"\\u"[..]) {
                                        return Err(Bail);
                                    }
                                    let low = hex4(b, at + 4)?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return Err(Bail);
                                    }
                                    at += 6;
                                    let c = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                                    char::from_u32(c).ok_or(Bail)?
                                }
                                _ => char::from_u32(unit).ok_or(Bail)?,
                            }
                        }
                        _ => return Err(Bail),
                    };
                    self.scratch.push(c);
                    at += 2;
                    run = at;
                }
                0x80.. => at += 1,
                _ => return Err(Bail),
            }
            at = first_special(b, at).ok_or(Bail)?;
        }
    }

    /// A number, at its `-` or first digit, as serde_json's `parse_integer` reads it. `f32`:
    /// for an `f32`, which serde_json's `float_roundtrip` rounds from the digits directly, so
    /// a decimal is left to serde_json.
    #[inline]
    fn number(&mut self, f32: bool) -> Result<Number> {
        let b = self.b;
        let mut i = self.i;
        let negative = b[i] == b'-';
        i += usize::from(negative);
        let digits = |i: &mut usize, n: &mut u64| {
            let from = *i;
            while let Some(&c) = b.get(*i)
                && c.is_ascii_digit()
            {
                *n = n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
                *i += 1;
            }
            *i - from
        };
        let mut n = 0u64;
        let int_start = i;
        let whole = digits(&mut i, &mut n);
        // No digit, a leading zero, or more digits than a u64 is sure to hold.
        if whole == 0 || whole > 19 || (whole > 1 && b[int_start] == b'0') {
            return Err(Bail);
        }
        let number = match b.get(i) {
            Some(b'.') => {
                i += 1;
                let fraction = digits(&mut i, &mut n);
                if fraction == 0
                    || whole + fraction > 19
                    || n > 1 << 53
                    || f32
                    || matches!(b.get(i), Some(b'e' | b'E'))
                {
                    return Err(Bail);
                }
                let f = n as f64 / POW10[fraction];
                Number::F64(if negative { -f } else { f })
            }
            Some(b'e' | b'E') => return Err(Bail),
            _ if !negative => Number::U64(n),
            _ => {
                // serde_json's `parse_number`: `-0`, and what an i64 cannot hold, are floats.
                let neg = (n as i64).wrapping_neg();
                if neg >= 0 {
                    Number::F64(-(n as f64))
                } else {
                    Number::I64(neg)
                }
            }
        };
        self.i = i;
        Ok(number)
    }

    /// A number for a visitor that asked for one.
    #[inline]
    fn visit_number<V: Visitor<'de>>(&mut self, f32: bool, visitor: V) -> Result<V::Value> {
        match self.peek_value()? {
            b'-' | b'0'..=b'9' => self.number(f32)?.visit(visitor),
            _ => Err(Bail),
        }
    }

    /// Opens an array or object, at its bracket.
    #[inline]
    fn open(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Bail);
        }
        self.i += 1;
        Ok(())
    }

    /// Closes what [`Reader::open`] opened: `end` must follow.
    #[inline]
    fn close(&mut self, end: u8) -> Result<()> {
        self.depth -= 1;
        self.expect(end)
    }

    /// An array, at its `[`.
    fn seq<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        self.open()?;
        let value = visitor.visit_seq(Seq {
            r: self,
            first: true,
        })?;
        self.close(b']')?;
        Ok(value)
    }

    /// An object, at its `{`.
    fn map<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        self.open()?;
        let value = visitor.visit_map(Map {
            r: self,
            first: true,
        })?;
        self.close(b'}')?;
        Ok(value)
    }
}

/// `b` as a `str`, if it is UTF-8.
#[inline]
fn utf8(b: &[u8]) -> Result<&str> {
    simdutf8::basic::from_utf8(b).map_err(|_| Bail)
}

/// Four hex digits at `at`.
fn hex4(b: &[u8], at: usize) -> Result<u32> {
    let digits = b.get(at..at + 4).ok_or(Bail)?;
    digits.iter().try_fold(0, |n, &c| {
        let d = (c as char).to_digit(16).ok_or(Bail)?;
        Ok(n << 4 | d)
    })
}

/// A newtype struct is its one value, as with serde_json, but for serde_json's `RawValue`
/// (named `$serde_json::private::RawValue`), which only serde_json reads.
fn newtype_struct<'de, D, V>(de: D, name: &str, visitor: V) -> Result<V::Value>
where
    D: de::Deserializer<'de, Error = Bail>,
    V: Visitor<'de>,
{
    if is_serde_json_private(name) {
        return Err(Bail);
    }
    visitor.visit_newtype_struct(de)
}

/// `deserialize_*` methods that give up.
macro_rules! bail {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, _: V) -> Result<V::Value> {
            Err(Bail)
        }
    )*};
}

/// `deserialize_*` methods for numbers (serde_json's `deserialize_number`).
macro_rules! numbers {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
            self.visit_number(false, visitor)
        }
    )*};
}

impl<'de> de::Deserializer<'de> for &mut Reader<'de> {
    type Error = Bail;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek_value()? {
            b'n' => {
                self.word(b"null")?;
                visitor.visit_unit()
            }
            b't' => {
                self.word(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.word(b"false")?;
                visitor.visit_bool(false)
            }
            b'-' | b'0'..=b'9' => self.number(false)?.visit(visitor),
            b'"' => visit_str(self.string()?, visitor),
            b'[' => self.seq(visitor),
            b'{' => self.map(visitor),
            _ => Err(Bail),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek_value()? {
            b't' => {
                self.word(b"true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.word(b"false")?;
                visitor.visit_bool(false)
            }
            _ => Err(Bail),
        }
    }

    numbers! { deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_f64 }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.visit_number(true, visitor)
    }

    bail! { deserialize_i128 deserialize_u128 }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek_value()? {
            b'"' => visit_str(self.string()?, visitor),
            _ => Err(Bail),
        }
    }
    #[inline]
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    // serde_json hands a string's raw bytes, escapes and all: left to it.
    bail! { deserialize_bytes deserialize_byte_buf }

    #[inline]
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek() {
            Some(b'n') => {
                self.word(b"null")?;
                visitor.visit_none()
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek_value()? {
            b'n' => {
                self.word(b"null")?;
                visitor.visit_unit()
            }
            _ => Err(Bail),
        }
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        newtype_struct(self, name, visitor)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek_value()? {
            b'[' => self.seq(visitor),
            _ => Err(Bail),
        }
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek_value()? {
            b'{' => self.map(visitor),
            _ => Err(Bail),
        }
    }

    /// As serde_json: from an object, or from an array of the fields in order.
    #[inline]
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.peek_value()? {
            b'{' => self.map(visitor),
            b'[' => self.seq(visitor),
            _ => Err(Bail),
        }
    }

    /// As serde_json: a unit variant from a string, any variant from an object of one key.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.peek_value()? {
            b'"' => visitor.visit_enum(UnitVariant(self)),
            b'{' => {
                self.open()?;
                let value = visitor.visit_enum(VariantObject(&mut *self))?;
                self.close(b'}')?;
                Ok(value)
            }
            _ => Err(Bail),
        }
    }

    #[inline]
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    /// The value is read as any other (serde_json checks a skipped value as strictly).
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_any(de::IgnoredAny)?;
        visitor.visit_unit()
    }
}

/// An array's elements (serde_json's `SeqAccess`).
struct Seq<'a, 'de> {
    r: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> de::SeqAccess<'de> for Seq<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.r.peek_value()? {
            b']' => return Ok(None),
            _ if self.first => self.first = false,
            // Not a trailing comma.
            b',' if self.r.after_comma()? != b']' => {}
            _ => return Err(Bail),
        }
        seed.deserialize(&mut *self.r).map(Some)
    }
}

/// An object's entries (serde_json's `MapAccess`).
struct Map<'a, 'de> {
    r: &'a mut Reader<'de>,
    first: bool,
}

impl<'de> de::MapAccess<'de> for Map<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.r.peek_value()? {
            b'}' => return Ok(None),
            b'"' if self.first => self.first = false,
            // Keys are strings.
            b',' if !self.first && self.r.after_comma()? == b'"' => {}
            _ => return Err(Bail),
        }
        seed.deserialize(Key(&mut *self.r)).map(Some)
    }

    #[inline]
    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        self.r.expect(b':')?;
        seed.deserialize(&mut *self.r)
    }
}

/// An object's key, at its opening quote (serde_json's `MapKey`): a string, whatever is asked
/// for, but for numbers and `bool`s, which serde_json reads from inside the quotes (left to
/// it), and an enum, a unit variant named by the key.
struct Key<'a, 'de>(&'a mut Reader<'de>);

impl<'de> de::Deserializer<'de> for Key<'_, 'de> {
    type Error = Bail;

    #[inline]
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visit_str(self.0.string()?, visitor)
    }

    #[inline]
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visit_str(self.0.string()?, visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_some(self)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        newtype_struct(self, name, visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_enum(&mut *self.0, name, variants, visitor)
    }

    bail! { deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_bytes deserialize_byte_buf }

    serde::forward_to_deserialize_any! {
        char str string unit unit_struct seq tuple tuple_struct map struct ignored_any
    }
}

/// An enum named by a string (serde_json's `UnitVariantAccess`).
struct UnitVariant<'a, 'de>(&'a mut Reader<'de>);

impl<'de> de::EnumAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Bail;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        let variant = seed.deserialize(&mut *self.0)?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for UnitVariant<'_, 'de> {
    type Error = Bail;

    fn unit_variant(self) -> Result<()> {
        Ok(())
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _: T) -> Result<T::Value> {
        Err(Bail)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, _: V) -> Result<V::Value> {
        Err(Bail)
    }
    fn struct_variant<V: Visitor<'de>>(self, _: &'static [&'static str], _: V) -> Result<V::Value> {
        Err(Bail)
    }
}

/// An enum as an object of one key, the variant, after its `{` (serde_json's
/// `VariantAccess`).
struct VariantObject<'a, 'de>(&'a mut Reader<'de>);

impl<'de> de::EnumAccess<'de> for VariantObject<'_, 'de> {
    type Error = Bail;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self)> {
        if self.0.peek_value()? != b'"' {
            return Err(Bail);
        }
        let variant = seed.deserialize(Key(&mut *self.0))?;
        self.0.expect(b':')?;
        Ok((variant, self))
    }
}

impl<'de> de::VariantAccess<'de> for VariantObject<'_, 'de> {
    type Error = Bail;

    fn unit_variant(self) -> Result<()> {
        de::Deserialize::deserialize(self.0)
    }
    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.0)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_seq(self.0, visitor)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(self.0, "", fields, visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::from_slice;
    use proptest::prelude::*;
    use serde::de::DeserializeOwned;
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Debug, Serialize, Deserialize)]
    enum Kind {
        Plain,
        Count(u8),
        Pair(i32, bool),
        Named { x: Option<f32> },
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(untagged)]
    enum Loose {
        Number(f64),
        Text(String),
        List(Vec<Loose>),
    }

    #[derive(Debug, Serialize, Deserialize)]
    #[serde(tag = "type")]
    enum Tagged {
        A { v: i32 },
        B { s: String },
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Extra {
        #[serde(default)]
        extra: Option<String>,
    }

    #[derive(Debug, Serialize, Deserialize)]
    struct Reading {
        id: String,
        #[serde(default)]
        n: Option<u64>,
        #[serde(default)]
        t: i16,
        #[serde(default)]
        f: f64,
        #[serde(default)]
        g: Option<f32>,
        #[serde(default)]
        tags: Vec<String>,
        #[serde(default)]
        kind: Option<Kind>,
        #[serde(default)]
        by_name: BTreeMap<String, i64>,
        #[serde(default)]
        by_number: BTreeMap<u32, bool>,
        #[serde(default)]
        c: Option<char>,
        #[serde(default)]
        loose: Option<Loose>,
        #[serde(default)]
        tagged: Option<Tagged>,
        #[serde(default)]
        pair: Option<(u8, String)>,
        #[serde(default)]
        nested: Option<Box<Reading>>,
    }

    /// The bench's record, which the reader must read itself.
    #[derive(Debug, Serialize, Deserialize)]
    struct Flat {
        sensor_id: String,
        site: String,
        celsius: f64,
        at_ms: u64,
        note: String,
        #[serde(flatten)]
        rest: Extra,
    }

    /// The reader agrees with serde_json on `text` read as a `T`: whatever it reads, serde_json
    /// reads the same; and `decode` answers exactly as serde_json does. `Some(read)`: whether
    /// the reader read it itself.
    fn agree<T: DeserializeOwned + Serialize>(text: &[u8]) -> Result<bool, TestCaseError> {
        let show = |v: &T| serde_json::to_string(v).unwrap();
        let theirs = serde_json::from_slice::<T>(text);
        let mut read = false;
        if let Ok(ours) = from_slice::<T>(text) {
            read = true;
            let text = String::from_utf8_lossy(text);
            match &theirs {
                Ok(theirs) => prop_assert_eq!(show(&ours), show(theirs), "{}", text),
                Err(e) => {
                    prop_assert!(false, "kpipe read {:?}, serde_json refused it: {}", text, e)
                }
            }
        }
        match (super::super::decode::<T>(text), &theirs) {
            (Ok(a), Ok(b)) => prop_assert_eq!(show(&a), show(b)),
            (Err(a), Err(b)) => prop_assert_eq!(a.to_string(), b.to_string()),
            (a, b) => prop_assert!(false, "decode {:?}, serde_json {:?}", a.is_ok(), b.is_ok()),
        }
        Ok(read)
    }

    fn ws() -> impl Strategy<Value = String> {
        prop_oneof![4 => Just(String::new()), 1 => "[ \n\t\r]{1,2}"]
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            24 => "-?(0|[1-9][0-9]{0,4})(\\.[0-9]{1,4})?",
            2 => "-?(0|[1-9][0-9]{0,21})(\\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?",
            1 => "-?0[0-9]{1,3}|-|-?[0-9]+\\.|1e|\\.5",
            1 => Just("-0".to_owned()),
            1 => Just("18446744073709551616".to_owned()),
            1 => Just("-9223372036854775808".to_owned()),
            1 => Just("9007199254740993.5".to_owned()),
        ]
    }

    fn string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            40 => "[a-zA-Z0-9 _:./-]{1,12}",
            1 => Just("é€".to_owned()),
            1 => Just("😀".to_owned()),
            1 => Just("\\n".to_owned()),
            1 => Just("\\\"".to_owned()),
            1 => Just("\\\\".to_owned()),
            1 => Just("\\/".to_owned()),
            1 => Just("\\u00e9".to_owned()),
            1 => Just("\\u20AC".to_owned()),
            1 => Just("\\ud83d\\ude00".to_owned()),
            1 => Just("\\ud800".to_owned()),
            1 => Just("\\udc00x".to_owned()),
            1 => Just("\\x".to_owned()),
            1 => Just("\u{1}".to_owned()),
            1 => Just("\u{7f}".to_owned()),
        ];
        proptest::collection::vec(piece, 0..5).prop_map(|p| format!("\"{}\"", p.concat()))
    }

    /// JSON, and some that is not, of any shape.
    fn value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            3 => number(),
            3 => string(),
            1 => Just("true".to_owned()),
            1 => Just("false".to_owned()),
            1 => Just("null".to_owned()),
            1 => Just("nul".to_owned()),
            8 => "[0-9]{1,3}".prop_map(|s| s),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                (proptest::collection::vec(inner.clone(), 0..4), ws())
                    .prop_map(|(v, w)| { format!("[{w}{}{w}]", v.join(&format!("{w},"))) }),
                (proptest::collection::vec((string(), inner), 0..4), ws()).prop_map(|(v, w)| {
                    let entries: Vec<String> = v
                        .into_iter()
                        .map(|(k, v)| format!("{k}{w}:{w}{v}"))
                        .collect();
                    format!("{{{w}{}{w}}}", entries.join(","))
                }),
            ]
        })
    }

    /// Objects shaped like `Reading`s, most of their values the right type.
    fn reading(depth: u32) -> BoxedStrategy<String> {
        let kind = prop_oneof![
            Just("\"Plain\"".to_owned()),
            Just("\"Count\"".to_owned()),
            "\\{\"Count\": ?[0-9]{1,3}\\}",
            "\\{\"Pair\":\\[-?[0-9]{1,3},(true|false)\\]\\}",
            "\\{\"Named\":\\{\"x\":(null|-?[0-9]{1,3}\\.[0-9]{1,9})\\}\\}",
            "\\{\"Plain\":null\\}",
            "\\{\"Nope\":1\\}",
        ];
        let typed = prop_oneof![
            ("\"id\"", string()),
            ("\"i\\\\u0064\"", string()),
            (
                "\"n\"",
                prop_oneof![3 => "[1-9][0-9]{0,19}", 1 => number(), 1 => Just("null".to_owned())]
            ),
            (
                "\"t\"",
                prop_oneof![4 => "-?[1-9][0-9]{0,3}", 1 => number()]
            ),
            (
                "\"f\"",
                prop_oneof![3 => "-?[0-9]{1,3}\\.[0-9]{1,17}", 1 => number()]
            ),
            ("\"g\"", number()),
            (
                "\"tags\"",
                proptest::collection::vec(string(), 0..3)
                    .prop_map(|v| format!("[{}]", v.join(",")))
            ),
            ("\"kind\"", kind),
            (
                "\"by_name\"",
                proptest::collection::vec((string(), "-?[1-9][0-9]{0,5}"), 0..3).prop_map(|v| {
                    let e: Vec<String> = v.into_iter().map(|(k, n)| format!("{k}:{n}")).collect();
                    format!("{{{}}}", e.join(","))
                })
            ),
            (
                "\"by_number\"",
                Just("{\"1\":true,\"22\":false}".to_owned())
            ),
            (
                "\"c\"",
                prop_oneof![4 => "\"([a-z]|é|😀|\\\\n|\\\\u20ac)\"", 1 => string()]
            ),
            (
                "\"loose\"",
                prop_oneof![3 => "\\[-?[0-9]{1,3}(\\.[0-9])?,\"[a-z]*\",\\[\\]\\]", 1 => value()]
            ),
            (
                "\"tagged\"",
                prop_oneof![
                    Just("{\"type\":\"A\",\"v\":3}".to_owned()),
                    Just("{\"s\":\"x\",\"type\":\"B\"}".to_owned()),
                ]
            ),
            (
                "\"pair\"",
                prop_oneof![3 => "\\[[0-9]{1,3},\"[a-z]{0,3}\"\\]", 1 => value()]
            ),
            ("\"other\"", value()),
            (string(), value()),
        ]
        .prop_map(|(k, v)| (k.to_owned(), v));
        let nested = if depth == 0 {
            Just(None).boxed()
        } else {
            proptest::option::of(reading(depth - 1)).boxed()
        };
        (
            proptest::collection::vec(typed, 0..6),
            nested,
            ws(),
            proptest::bool::weighted(0.9),
        )
            .prop_map(|(mut entries, nested, w, with_id)| {
                if with_id {
                    entries.insert(0, ("\"id\"".to_owned(), "\"r-1\"".to_owned()));
                }
                if let Some(n) = nested {
                    entries.push(("\"nested\"".to_owned(), n));
                }
                let e: Vec<String> = entries
                    .into_iter()
                    .map(|(k, v)| format!("{w}{k}{w}:{w}{v}"))
                    .collect();
                format!("{w}{{{}{w}}}{w}", e.join(","))
            })
            .boxed()
    }

    /// `text` with one byte removed, inserted or replaced at `at`.
    fn damage(text: &str, at: usize, how: u8, byte: u8) -> Vec<u8> {
        let mut b = text.as_bytes().to_vec();
        let at = at % (b.len() + 1);
        match how % 3 {
            0 if at < b.len() => {
                b.remove(at);
            }
            1 => b.insert(at, byte),
            _ if at < b.len() => b[at] = byte,
            _ => b.push(byte),
        }
        b
    }

    fn damaging_byte() -> impl Strategy<Value = u8> {
        prop_oneof![
            proptest::sample::select(b"\"\\,:{}[]0-.eE x\x01n".to_vec()),
            any::<u8>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn records_are_read_as_serde_json_reads_them(text in reading(2)) {
            agree::<Reading>(text.as_bytes())?;
            agree::<serde_json::Value>(text.as_bytes())?;
        }

        #[test]
        fn damaged_records_are_read_as_serde_json_reads_them(
            text in reading(1),
            at in any::<usize>(),
            how in any::<u8>(),
            byte in damaging_byte(),
        ) {
            let damaged = damage(&text, at, how, byte);
            agree::<Reading>(&damaged)?;
            agree::<serde_json::Value>(&damaged)?;
        }

        #[test]
        fn any_value_is_read_as_serde_json_reads_it(text in value()) {
            agree::<serde_json::Value>(text.as_bytes())?;
            agree::<Loose>(text.as_bytes())?;
            agree::<Vec<Option<f64>>>(text.as_bytes())?;
            agree::<BTreeMap<String, String>>(text.as_bytes())?;
        }

        #[test]
        fn numbers_are_the_same_bits(text in number()) {
            let ours = from_slice::<f64>(text.as_bytes());
            let theirs = serde_json::from_str::<f64>(&text);
            if let Ok(ours) = ours {
                prop_assert_eq!(Some(ours.to_bits()), theirs.ok().map(f64::to_bits), "{}", text);
            }
            for t in [&text, &format!("[{text}]"), &format!("{{\"k\":{text}}}")] {
                agree::<serde_json::Value>(t.as_bytes())?;
            }
            agree::<i8>(text.as_bytes())?;
            agree::<u64>(text.as_bytes())?;
            agree::<i64>(text.as_bytes())?;
            agree::<f32>(text.as_bytes())?;
        }
    }

    /// Nesting past the reader's limit is serde_json's to refuse (its recursion limit), without
    /// a deep stack on either side.
    #[test]
    fn deep_nesting_is_left_to_serde_json() {
        for depth in [super::MAX_DEPTH as usize + 1, 100_000] {
            let deep = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            assert!(from_slice::<serde_json::Value>(deep.as_bytes()).is_err());
            let ours = super::super::decode::<serde_json::Value>(deep.as_bytes());
            let theirs = serde_json::from_slice::<serde_json::Value>(deep.as_bytes());
            assert_eq!(ours.is_ok(), theirs.is_ok());
            assert_eq!(
                ours.map_err(|e| e.to_string()).err(),
                theirs.map_err(|e| e.to_string()).err()
            );
        }
        let depth = super::MAX_DEPTH as usize;
        let shallow = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        assert!(from_slice::<serde_json::Value>(shallow.as_bytes()).is_ok());
    }

    /// The usual records take the fast path (a reader that always gave up would pass the
    /// tests above).
    #[test]
    fn usual_records_are_read_without_serde_json() {
        let read = |text: &str| -> bool { agree::<Reading>(text.as_bytes()).unwrap() };
        assert!(read(r#"{"id":"r-1"}"#));
        assert!(read(
            r#" { "id" : "caf\u00e9 \"x\" \ud83d\ude00 é", "n": null, "t": -12, "f": -0.25,
                "g": 2, "tags": ["a", "b"], "kind": {"Named": {"x": 1}},
                "by_name": {"k": -9223372036854775808}, "c": "€", "loose": [1.5, "x", [2]],
                "tagged": {"type": "B", "s": "y"}, "pair": [7, "p"], "unknown": {"a": [true, null]},
                "nested": {"id": "in", "kind": "Plain"} } "#
        ));
        assert!(read(r#"{"id":"x","kind":{"Pair":[-3,false]}}"#));
        assert!(read(r#"["x", 1]"#) || serde_json::from_str::<Reading>(r#"["x", 1]"#).is_err());
        let flat = r#"{"sensor_id":"sensor-00042","site":"oslo","celsius":12.3,"at_ms":1795766400042,"note":"calibrated 2026-10-01 by the field team; housing ok"}"#;
        assert!(agree::<Flat>(flat.as_bytes()).unwrap());
        assert!(agree::<serde_json::Value>(flat.as_bytes()).unwrap());
        // What is left to serde_json.
        assert!(!read(r#"{"id":"x","n":1e3}"#));
        assert!(!read(r#"{"id":"x","by_number":{"1":true}}"#));
        assert!(!read(r#"{"id":"x","g":1.5}"#));
        assert!(!read(r#"{"id":"x"} x"#));
        // Not UTF-8: in a string (a lone continuation byte, a truncated character), outside.
        for bytes in [
            &b"{\"id\":\"\x80\"}"[..],
            b"{\"id\":\"\xc3\"}",
            b"{\"id\":\"x\"}\xc3\xa9",
        ] {
            assert!(!agree::<Reading>(bytes).unwrap());
            assert!(!agree::<serde_json::Value>(bytes).unwrap());
        }
    }
}
