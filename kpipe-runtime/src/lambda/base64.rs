//! Base64 of the Firehose event's records and of the response's answers: RFC 4648's standard
//! alphabet, padded, exactly as base64-simd's `STANDARD` decodes and encodes it.
//!
//! base64-simd takes 32 characters a step with AVX2 while 38 are left, and 24 bytes while 28
//! are left; what remains of each record (30 to 37 characters, about a fifth of a
//! 190-character record) goes through its scalar loop, a table lookup a character. Here, on
//! x86-64 with AVX2, the whole groups a record has left take one more AVX2 step that ends
//! where they do (it does a few characters again, to the same result), and only the last,
//! padded group is done a character at a time. (Copying the last block into a block of zeros
//! instead stalled every record: a load of 16 bytes that 8- and 16-byte stores had just
//! written cannot be forwarded from them; only records under 24 bytes go that way.)
//!
//! Anything but plain padded base64 (a character outside the alphabet, misplaced or
//! non-canonical padding, a length that is not a multiple of 4) is left to base64-simd, whose
//! error the handler reports; elsewhere (e.g. Graviton) base64-simd does it all (NEON).
//!
//! The AVX2 steps are Wojciech Muła's and Daniel Lemire's ("Faster Base64 Encoding and
//! Decoding Using AVX2 Instructions", ACM TOWS 2018, <https://arxiv.org/abs/1704.00605>).

/// Appends the bytes `src` encodes to `out`, or fails as base64-simd's `STANDARD` does
/// (`out` is then as it was).
pub(super) fn decode_append(src: &[u8], out: &mut Vec<u8>) -> Result<(), base64_simd::Error> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        if unsafe { x86::decode_append(src, out) } {
            return Ok(());
        }
    }
    base64_simd::STANDARD.decode_append(src, out)
}

/// Appends `src`'s base64 to `out`, as base64-simd's `STANDARD` does.
pub(super) fn encode_append(src: &[u8], out: &mut String) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, and base64 is ASCII, so `out` stays UTF-8.
        unsafe { x86::encode_append(src, out.as_mut_vec()) };
        return;
    }
    base64_simd::STANDARD.encode_append(src, out);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        __m256i, _mm_loadu_si128, _mm256_add_epi8, _mm256_and_si256, _mm256_castsi128_si256,
        _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_inserti128_si256, _mm256_loadu_si256,
        _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_movemask_epi8, _mm256_mulhi_epu16,
        _mm256_mullo_epi16, _mm256_or_si256, _mm256_permutevar8x32_epi32, _mm256_set1_epi8,
        _mm256_set1_epi32, _mm256_setr_epi8, _mm256_setr_epi32, _mm256_setzero_si256,
        _mm256_shuffle_epi8, _mm256_srli_epi32, _mm256_storeu_si256, _mm256_sub_epi8,
        _mm256_subs_epu8, _mm256_testz_si256,
    };

    /// The 24 bytes 32 characters encode, in the first 24 of the result (the last 8 are
    /// zero), or `None` if one of them is not in the alphabet.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn decode32(chars: __m256i) -> Option<__m256i> {
        // Which characters are valid, from a table of their low and one of their high nibble.
        let lut_lo = _mm256_setr_epi8(
            0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a, 0x1b, 0x1b,
            0x1b, 0x1a, 0x15, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x13, 0x1a,
            0x1b, 0x1b, 0x1b, 0x1a,
        );
        let lut_hi = _mm256_setr_epi8(
            0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10, 0x10, 0x10,
            0x10, 0x10, 0x10, 0x10, 0x01, 0x02, 0x04, 0x08, 0x04, 0x08, 0x10, 0x10, 0x10, 0x10,
            0x10, 0x10, 0x10, 0x10,
        );
        // What to add to a character for its 6 bits, by its high nibble (`/` on its own).
        let lut_roll = _mm256_setr_epi8(
            0, 16, 19, 4, -65, -65, -71, -71, 0, 0, 0, 0, 0, 0, 0, 0, 0, 16, 19, 4, -65, -65, -71,
            -71, 0, 0, 0, 0, 0, 0, 0, 0,
        );
        let mask_2f = _mm256_set1_epi8(0x2f);
        let hi_nibbles = _mm256_and_si256(_mm256_srli_epi32::<4>(chars), mask_2f);
        let lo_nibbles = _mm256_and_si256(chars, mask_2f);
        let hi = _mm256_shuffle_epi8(lut_hi, hi_nibbles);
        let lo = _mm256_shuffle_epi8(lut_lo, lo_nibbles);
        if _mm256_testz_si256(lo, hi) == 0 {
            return None;
        }
        let eq_2f = _mm256_cmpeq_epi8(chars, mask_2f);
        let roll = _mm256_shuffle_epi8(lut_roll, _mm256_add_epi8(eq_2f, hi_nibbles));
        let sextets = _mm256_add_epi8(chars, roll);
        // Four 6-bit values to three bytes, then the 12 bytes of each lane together.
        let pairs = _mm256_maddubs_epi16(sextets, _mm256_set1_epi32(0x0140_0140));
        let triples = _mm256_madd_epi16(pairs, _mm256_set1_epi32(0x0001_1000));
        let packed = _mm256_shuffle_epi8(
            triples,
            _mm256_setr_epi8(
                2, 1, 0, 6, 5, 4, 10, 9, 8, 14, 13, 12, -1, -1, -1, -1, 2, 1, 0, 6, 5, 4, 10, 9, 8,
                14, 13, 12, -1, -1, -1, -1,
            ),
        );
        Some(_mm256_permutevar8x32_epi32(
            packed,
            _mm256_setr_epi32(0, 1, 2, 4, 5, 6, 3, 7),
        ))
    }

    /// [`super::decode_append`] with AVX2; `false` (and `out` as it was) for anything but
    /// plain padded base64, which base64-simd then fails with its error.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn decode_append(src: &[u8], out: &mut Vec<u8>) -> bool {
        let len = src.len();
        if !len.is_multiple_of(4) {
            return false;
        }
        if len == 0 {
            return true;
        }
        let pad = match (src[len - 2], src[len - 1]) {
            (b'=', b'=') => 2,
            (_, b'=') => 1,
            _ => 0,
        };
        // The characters that carry bits, and the bytes they make (`n % 4` is 0, 2 or 3).
        let n = len - pad;
        let bytes = n / 4 * 3 + (n % 4).saturating_sub(1);
        let start = out.len();
        // Each step stores 32 bytes, of which up to 24 are the step's.
        out.reserve(bytes + 32);
        let src = src.as_ptr();
        // SAFETY: `reserve` made room for `bytes + 32` after `start`, and a step stores 32
        // bytes from a multiple of 3 under `bytes`. Reads stay in `src[..n]` or the stack block.
        unsafe {
            let dst = out.as_mut_ptr().add(start);
            let mut i = 0;
            while n - i >= 32 {
                let Some(step) = decode32(_mm256_loadu_si256(src.add(i).cast())) else {
                    return false;
                };
                _mm256_storeu_si256(dst.add(i / 4 * 3).cast(), step);
                i += 32;
            }
            let rest = n - i;
            if i == 0 {
                // Under 32 characters: from a block of `A`s (zeros).
                if rest > 0 && !decode_short(src, rest, dst, bytes) {
                    return false;
                }
            } else {
                // The whole groups left, as one more step that ends where they do (it decodes
                // some characters again, to the same bytes), then the last group of 2 or 3.
                let whole = rest / 4 * 4;
                if whole > 0 {
                    let j = i + whole - 32;
                    let Some(step) = decode32(_mm256_loadu_si256(src.add(j).cast())) else {
                        return false;
                    };
                    _mm256_storeu_si256(dst.add(j / 4 * 3).cast(), step);
                }
                if rest > whole
                    && !decode_group(
                        src.add(i + whole),
                        rest - whole,
                        dst.add((i + whole) / 4 * 3),
                    )
                {
                    return false;
                }
            }
            out.set_len(start + bytes);
        }
        true
    }

    /// Decodes the `rest` characters (1 to 31) from `src` into the `bytes` bytes at `dst`
    /// (with room for 32) through a block of `A`s, which decode to zeros; `false` if one is not
    /// in the alphabet or the last has unused bits set.
    ///
    /// # Safety
    /// The CPU must have AVX2; `src` readable for `rest`, `dst` writable for 32.
    #[target_feature(enable = "avx2")]
    unsafe fn decode_short(src: *const u8, rest: usize, dst: *mut u8, bytes: usize) -> bool {
        let mut block = [b'A'; 32];
        // SAFETY: as the caller promised; `rest < 32`.
        unsafe {
            crate::bytes::copy_short(src, block.as_mut_ptr(), rest);
            let Some(step) = decode32(_mm256_loadu_si256(block.as_ptr().cast())) else {
                return false;
            };
            // A byte past the last that is not zero holds the last character's unused bits:
            // non-canonical, which base64-simd refuses.
            let zeros = _mm256_movemask_epi8(_mm256_cmpeq_epi8(step, _mm256_setzero_si256()));
            if (!zeros as u32) >> bytes != 0 {
                return false;
            }
            _mm256_storeu_si256(dst.cast(), step);
        }
        true
    }

    /// Decodes a last group of `k` (2 or 3) characters from `src` into the `k - 1` bytes at
    /// `dst`; `false` if one is not in the alphabet or the last has unused bits set.
    ///
    /// # Safety
    /// `src` readable for `k`, `dst` writable for `k - 1`.
    #[inline(always)]
    unsafe fn decode_group(src: *const u8, k: usize, dst: *mut u8) -> bool {
        // SAFETY: as the caller promised.
        unsafe {
            let a = SEXTETS[usize::from(*src)];
            let b = SEXTETS[usize::from(*src.add(1))];
            let c = if k == 3 {
                SEXTETS[usize::from(*src.add(2))]
            } else {
                0
            };
            let unused = if k == 3 { c & 0x03 } else { b & 0x0f };
            if (a | b | c) == INVALID || unused != 0 {
                return false;
            }
            *dst = a << 2 | b >> 4;
            if k == 3 {
                *dst.add(1) = b << 4 | c >> 2;
            }
        }
        true
    }

    /// Not a character of the alphabet, in [`SEXTETS`].
    const INVALID: u8 = 0xff;

    /// Each byte's 6-bit value in the standard alphabet, or `INVALID`.
    static SEXTETS: [u8; 256] = {
        let mut table = [INVALID; 256];
        let mut i = 0;
        while i < 64 {
            table[ALPHABET[i] as usize] = i as u8;
            i += 1;
        }
        table
    };

    /// RFC 4648's standard alphabet.
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    /// The 32 characters that encode the 24 bytes of `lanes`, the first 12 of each lane
    /// ([`lanes`]) or the last 12 of the high one ([`lanes_ending`]).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn encode24(lanes: __m256i, high_last: bool) -> __m256i {
        // Each 3 bytes to four 6-bit values, one a byte.
        let spread = if high_last {
            _mm256_setr_epi8(
                1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 5, 4, 6, 5, 8, 7, 9, 8, 11, 10,
                12, 11, 14, 13, 15, 14,
            )
        } else {
            _mm256_setr_epi8(
                1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10, 1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8,
                7, 10, 9, 11, 10,
            )
        };
        let spread = _mm256_shuffle_epi8(lanes, spread);
        let t0 = _mm256_and_si256(spread, _mm256_set1_epi32(0x0fc0_fc00));
        let t1 = _mm256_mulhi_epu16(t0, _mm256_set1_epi32(0x0400_0040));
        let t2 = _mm256_and_si256(spread, _mm256_set1_epi32(0x003f_03f0));
        let t3 = _mm256_mullo_epi16(t2, _mm256_set1_epi32(0x0100_0010));
        let sextets = _mm256_or_si256(t1, t3);
        // A 6-bit value to its character: add what its range needs.
        let offsets = _mm256_setr_epi8(
            65, 71, -4, -4, -4, -4, -4, -4, -4, -4, -4, -4, -19, -16, 0, 0, 65, 71, -4, -4, -4, -4,
            -4, -4, -4, -4, -4, -4, -19, -16, 0, 0,
        );
        let range = _mm256_sub_epi8(
            _mm256_subs_epu8(sextets, _mm256_set1_epi8(51)),
            _mm256_cmpgt_epi8(sextets, _mm256_set1_epi8(25)),
        );
        _mm256_add_epi8(sextets, _mm256_shuffle_epi8(offsets, range))
    }

    /// 24 bytes from `at` as two lanes of 12, each lane's first.
    ///
    /// # Safety
    /// The 28 bytes from `at` must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lanes(at: *const u8) -> __m256i {
        // SAFETY: as the caller promised.
        unsafe { two_halves(at, at.add(12)) }
    }

    /// 24 bytes from `at` as two lanes of 12, the first of the low lane and the last of the
    /// high one: nothing past the 24 is read.
    ///
    /// # Safety
    /// The 24 bytes from `at` must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn lanes_ending(at: *const u8) -> __m256i {
        // SAFETY: as the caller promised.
        unsafe { two_halves(at, at.add(8)) }
    }

    /// The 16 bytes at `lo` and the 16 at `hi` as the low and the high lane.
    ///
    /// # Safety
    /// Both must be readable.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn two_halves(lo: *const u8, hi: *const u8) -> __m256i {
        // SAFETY: as the caller promised.
        unsafe {
            let lo = _mm_loadu_si128(lo.cast());
            let hi = _mm_loadu_si128(hi.cast());
            _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi)
        }
    }

    /// Encodes a last group of `k` (1 or 2) bytes from `src` as 4 characters at `dst`, padded.
    ///
    /// # Safety
    /// `src` readable for `k`, `dst` writable for 4.
    #[inline(always)]
    unsafe fn encode_group(src: *const u8, k: usize, dst: *mut u8) {
        // SAFETY: as the caller promised.
        unsafe {
            let a = *src;
            let b = if k == 2 { *src.add(1) } else { 0 };
            let third = if k == 2 {
                ALPHABET[usize::from((b & 0x0f) << 2)]
            } else {
                b'='
            };
            dst.cast::<[u8; 4]>().write([
                ALPHABET[usize::from(a >> 2)],
                ALPHABET[usize::from((a & 0x03) << 4 | b >> 4)],
                third,
                b'=',
            ]);
        }
    }

    /// [`super::encode_append`] with AVX2.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn encode_append(src: &[u8], out: &mut Vec<u8>) {
        let len = src.len();
        let chars = len.div_ceil(3) * 4;
        let start = out.len();
        // A step stores 32 characters; under 24 bytes, more than the record's.
        out.reserve(chars + 32);
        let src = src.as_ptr();
        // SAFETY: `reserve` made room for `chars + 32` after `start`, and a step stores 32
        // characters from a multiple of 4 under `chars`. A step reads 28 bytes from `i` while
        // 28 are left, and 24 ending at the whole groups' end, or the stack block.
        unsafe {
            let dst = out.as_mut_ptr().add(start);
            let mut i = 0;
            while len - i >= 28 {
                let step = encode24(lanes(src.add(i)), false);
                _mm256_storeu_si256(dst.add(i / 3 * 4).cast(), step);
                i += 24;
            }
            let rest = len - i;
            if len < 24 {
                // From a block of zeros, which encode as `A`s; padding replaces those.
                if rest > 0 {
                    let mut block = [0u8; 28];
                    crate::bytes::copy_short(src, block.as_mut_ptr(), len);
                    _mm256_storeu_si256(dst.cast(), encode24(lanes(block.as_ptr()), false));
                    let end = dst.add(chars);
                    match len % 3 {
                        1 => end.sub(2).cast::<[u8; 2]>().write(*b"=="),
                        2 => end.sub(1).write(b'='),
                        _ => {}
                    }
                }
            } else {
                // The whole groups left, as one more step that ends where they do (it encodes
                // some bytes again, to the same characters), then the last group of 1 or 2.
                let whole = rest / 3 * 3;
                if whole > 24 {
                    // 27 bytes: a step at `i` too.
                    let step = encode24(lanes_ending(src.add(i)), true);
                    _mm256_storeu_si256(dst.add(i / 3 * 4).cast(), step);
                }
                if whole > 0 {
                    let j = i + whole - 24;
                    let step = encode24(lanes_ending(src.add(j)), true);
                    _mm256_storeu_si256(dst.add(j / 3 * 4).cast(), step);
                }
                if rest > whole {
                    encode_group(src.add(i + whole), rest - whole, dst.add(chars - 4));
                }
            }
            out.set_len(start + chars);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decoded(src: &[u8]) -> Result<Vec<u8>, String> {
        let mut out = b"before".to_vec();
        decode_append(src, &mut out).map_err(|e| e.to_string())?;
        assert_eq!(&out[..6], b"before");
        Ok(out[6..].to_vec())
    }

    fn simd_decoded(src: &[u8]) -> Result<Vec<u8>, String> {
        base64_simd::STANDARD
            .decode_to_vec(src)
            .map_err(|e| e.to_string())
    }

    /// A damage to a base64 text: a byte replaced, inserted or removed.
    fn damaged() -> impl Strategy<Value = (Vec<u8>, usize, u8, u8)> {
        (
            proptest::collection::vec(any::<u8>(), 0..120),
            any::<usize>(),
            prop_oneof![
                Just(b'='),
                Just(b'A'),
                Just(b'/'),
                Just(b'+'),
                Just(b'-'),
                any::<u8>()
            ],
            0..3u8,
        )
    }

    #[test]
    fn encodes_every_length_as_base64_simd() {
        let bytes: Vec<u8> = (0..400u32).map(|i| (i * 37 % 256) as u8).collect();
        for len in 0..bytes.len() {
            let mut out = String::from("before");
            encode_append(&bytes[..len], &mut out);
            assert_eq!(
                out[6..],
                base64_simd::STANDARD.encode_to_string(&bytes[..len])
            );
            assert_eq!(decoded(&out.as_bytes()[6..]).unwrap(), &bytes[..len]);
        }
    }

    /// Plain base64 takes the AVX2 path (where there is one), not base64-simd's.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn plain_base64_is_decoded_here() {
        if !std::arch::is_x86_feature_detected!("avx2") {
            return;
        }
        let bytes: Vec<u8> = (0..300u32).map(|i| (i * 101 % 256) as u8).collect();
        for len in 0..bytes.len() {
            let text = base64_simd::STANDARD.encode_to_string(&bytes[..len]);
            let mut out = Vec::new();
            // SAFETY: the CPU has AVX2.
            assert!(
                unsafe { x86::decode_append(text.as_bytes(), &mut out) },
                "{len}"
            );
            assert_eq!(out, &bytes[..len]);
        }
    }

    #[test]
    fn every_character_decodes_or_fails_as_base64_simd() {
        // Each byte value in each position of a record's last block and of a full step.
        let text = base64_simd::STANDARD.encode_to_string([7u8; 60]);
        for at in [0, 5, 31, 32, 40, text.len() - 3, text.len() - 1] {
            for c in 0..=255u8 {
                let mut t = text.clone().into_bytes();
                t[at] = c;
                assert_eq!(decoded(&t), simd_decoded(&t), "byte {c:#x} at {at}");
            }
        }
    }

    #[test]
    fn padding_and_its_unused_bits_as_base64_simd() {
        for text in [
            "", "=", "==", "===", "====", "A===", "QQ==", "QR==", "QUE=", "QUF=", "QUFB", "QQ=A",
            "QQ", "QUE", "Q===", "QUJD====",
        ] {
            assert_eq!(
                decoded(text.as_bytes()),
                simd_decoded(text.as_bytes()),
                "{text}"
            );
        }
    }

    proptest! {
        #[test]
        fn decodes_what_it_encodes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut text = String::new();
            encode_append(&bytes, &mut text);
            prop_assert_eq!(&text, &base64_simd::STANDARD.encode_to_string(&bytes));
            prop_assert_eq!(decoded(text.as_bytes()).unwrap(), bytes);
        }

        #[test]
        fn damaged_text_as_base64_simd((bytes, at, c, how) in damaged()) {
            let mut text = base64_simd::STANDARD.encode_to_string(&bytes).into_bytes();
            let at = at % (text.len() + 1);
            match how {
                0 if at < text.len() => text[at] = c,
                1 => text.insert(at, c),
                _ if at < text.len() => { text.remove(at); }
                _ => text.push(c),
            }
            prop_assert_eq!(decoded(&text), simd_decoded(&text));
        }
    }
}
