//! Finding where a JSON string's plain run ends, many bytes at a time: the scan the Lambda
//! event reader and the record reader share.

/// Where the first byte from `i` on is that a borrowed string cannot simply run over: a quote,
/// a backslash, a control character (under 0x20) or a byte of 0x80 or more (`None`: none
/// before the end). A quote found first ends a string of printable ASCII, the usual case, in
/// one pass. On x86-64 the first 16 bytes are checked in place with SSE2 (part of every
/// x86-64), which ends most of a record's keys and short values without a call; the rest 32
/// bytes at a time with AVX2 where the CPU has it (found once, at run time), else 16 at a time.
/// Elsewhere (e.g. Graviton) 8 at a time.
#[inline]
pub(crate) fn first_special(b: &[u8], i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        if i + 16 <= b.len() {
            // SAFETY: SSE2 is part of x86-64, and the 16 bytes from `i` are inside `b`.
            let mask = unsafe { x86::specials_sse2(b.as_ptr().add(i)) };
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            return x86::first_special_wide(b, i + 16);
        }
        x86::first_special_sse2(b, i)
    }
    #[cfg(not(target_arch = "x86_64"))]
    first_special_swar(b, i)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_cmplt_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8, _mm256_cmpeq_epi8, _mm256_cmpgt_epi8, _mm256_loadu_si256,
        _mm256_movemask_epi8, _mm256_or_si256, _mm256_set1_epi8,
    };

    /// [`super::first_special`] past its first 16 bytes: with AVX2 where the CPU has it.
    #[inline(never)]
    pub(super) fn first_special_wide(b: &[u8], i: usize) -> Option<usize> {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2.
            return unsafe { first_special_avx2(b, i) };
        }
        first_special_sse2(b, i)
    }

    /// Bit k set when byte k of the 16 at `at` is special.
    ///
    /// # Safety
    /// The 16 bytes from `at` must be readable (SSE2 is part of x86-64).
    #[inline(always)]
    pub(super) unsafe fn specials_sse2(at: *const u8) -> u32 {
        // SAFETY: as the caller promised.
        unsafe {
            let v = _mm_loadu_si128(at.cast());
            let special = _mm_or_si128(
                _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8)),
                ),
                // As signed bytes, control characters are under 0x20 and 0x80.. is negative.
                _mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
            );
            _mm_movemask_epi8(special) as u32
        }
    }

    /// [`super::first_special`] 32 bytes at a time, then 16.
    ///
    /// # Safety
    /// The CPU must have AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn first_special_avx2(b: &[u8], i: usize) -> Option<usize> {
        let quote = _mm256_set1_epi8(b'"' as i8);
        let backslash = _mm256_set1_epi8(b'\\' as i8);
        let space = _mm256_set1_epi8(0x20);
        // A loop of its own rather than `steps`: a closure here would not be compiled with
        // AVX2, and its intrinsics would be calls.
        let mut i = i;
        while i + 32 <= b.len() {
            // SAFETY: the 32 bytes from `i` are inside `b`.
            let v = unsafe { _mm256_loadu_si256(b.as_ptr().add(i).cast()) };
            // As signed bytes, control characters are under 0x20 and 0x80.. is negative.
            let special = _mm256_or_si256(
                _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)),
                _mm256_cmpgt_epi8(space, v),
            );
            let mask = _mm256_movemask_epi8(special) as u32;
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 32;
        }
        first_special_sse2(b, i)
    }

    /// [`super::first_special`] 16 bytes at a time.
    #[inline]
    pub(super) fn first_special_sse2(b: &[u8], mut i: usize) -> Option<usize> {
        while i + 16 <= b.len() {
            // SAFETY: the 16 bytes from `i` are inside `b`.
            let mask = unsafe { specials_sse2(b.as_ptr().add(i)) };
            if mask != 0 {
                return Some(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
        super::first_special_swar(b, i)
    }
}

/// [`first_special`] eight bytes at a time in a `u64`. Each test below flags the lowest byte
/// it matches exactly (a byte above one may be flagged by its borrow too), so the lowest
/// flag of all is the first special byte.
fn first_special_swar(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x;
    while i + 8 <= b.len() {
        let w = u64::from_le_bytes(b[i..i + 8].try_into().expect("eight bytes"));
        let flags = (zero_byte(w ^ (ONES * u64::from(b'"')))
            | zero_byte(w ^ (ONES * u64::from(b'\\')))
            // Under 0x20 borrows into the top bit; 0x80 and more has it already.
            | w.wrapping_sub(ONES * 0x20)
            | w)
            & HIGH;
        if flags != 0 {
            return Some(i + flags.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c))
        .map(|k| i + k)
}

/// Whether `b` holds a byte JSON must escape in a string: a quote, a backslash or a control
/// character (under 0x20). Eight bytes at a time in a `u64`, the last eight overlapping the
/// ones before, so a short string, as most keys and values are, takes a word or two; from 32
/// bytes on, [`first_special`]'s wider steps.
#[inline(always)]
pub(crate) fn needs_escape(b: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // Exact for "any byte": a zero byte, and a byte under 0x20, set their top bit; bytes of
    // 0x80 and more are masked out by `!w`.
    let escapes = |w: u64| {
        let zero = |x: u64| x.wrapping_sub(ONES) & !x;
        (zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | (w.wrapping_sub(ONES * 0x20) & !w))
            & HIGH
    };
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    let half = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes"));
    let n = b.len();
    match n {
        0..4 => b.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\'),
        4..8 => escapes(u64::from(half(0)) | u64::from(half(n - 4)) << 32) != 0,
        8..=16 => escapes(word(0)) | escapes(word(n - 8)) != 0,
        17..32 => {
            escapes(word(0))
                | escapes(word(8))
                | escapes(word((n - 8).min(16)))
                | escapes(word(n - 8))
                != 0
        }
        _ => {
            let mut at = 0;
            while let Some(i) = first_special(b, at) {
                if b[i] < 0x80 {
                    return true;
                }
                at = i + 1;
            }
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn strings_that_need_escapes_are_found(
            bytes in proptest::collection::vec(
                prop_oneof![8 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\')],
                0..80,
            ),
        ) {
            let expected = bytes.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
            prop_assert_eq!(needs_escape(&bytes), expected);
        }

        #[test]
        fn the_first_special_byte_is_found_from_any_start(
            bytes in proptest::collection::vec(
                prop_oneof![4 => 0x20u8..0x7f, 1 => any::<u8>(), 1 => Just(b'"'), 1 => Just(b'\\')],
                0..80,
            ),
            from in 0usize..80,
        ) {
            let from = from.min(bytes.len());
            let special = |c: u8| c == b'"' || c == b'\\' || !(0x20..0x80).contains(&c);
            let expected = bytes[from..].iter().position(|&c| special(c)).map(|k| from + k);
            prop_assert_eq!(first_special(&bytes, from), expected);
            prop_assert_eq!(first_special_swar(&bytes, from), expected);
            #[cfg(target_arch = "x86_64")]
            {
                prop_assert_eq!(super::x86::first_special_sse2(&bytes, from), expected);
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    prop_assert_eq!(unsafe { super::x86::first_special_avx2(&bytes, from) }, expected);
                }
            }
        }
    }
}
