//! Short byte copies on the hot paths (a record's numbers, the last block of its base64).

/// Copies `n` bytes, at most 64, from `src` to `dst` with two loads and two stores of a fixed
/// width (overlapping in the middle) rather than a call to `memcpy`.
///
/// # Safety
/// As [`std::ptr::copy_nonoverlapping`], and `n <= 64`.
#[inline(always)]
pub(crate) unsafe fn copy_short(src: *const u8, dst: *mut u8, n: usize) {
    /// The first and the last `W` of the `n` bytes, `W <= n <= 2 * W`.
    #[inline(always)]
    unsafe fn ends<const W: usize>(src: *const u8, dst: *mut u8, n: usize) {
        // SAFETY: `W <= n`: both reads and both writes are within the `n` bytes.
        unsafe {
            let head = src.cast::<[u8; W]>().read_unaligned();
            let tail = src.add(n - W).cast::<[u8; W]>().read_unaligned();
            dst.cast::<[u8; W]>().write_unaligned(head);
            dst.add(n - W).cast::<[u8; W]>().write_unaligned(tail);
        }
    }
    // SAFETY: each case stays within the `n` bytes the caller vouched for.
    unsafe {
        match n {
            0 => {}
            1..4 => {
                *dst = *src;
                *dst.add(n / 2) = *src.add(n / 2);
                *dst.add(n - 1) = *src.add(n - 1);
            }
            4..8 => ends::<4>(src, dst, n),
            8..16 => ends::<8>(src, dst, n),
            16..32 => ends::<16>(src, dst, n),
            _ => ends::<32>(src, dst, n),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn copies_exactly_n_bytes() {
        let src: Vec<u8> = (1..=64).collect();
        for n in 0..=64 {
            let mut dst = [0u8; 66];
            // SAFETY: `src` has 64 bytes, `dst` 66, and `n <= 64`.
            unsafe { super::copy_short(src.as_ptr(), dst.as_mut_ptr().add(1), n) };
            assert_eq!(dst[0], 0, "{n}");
            assert_eq!(&dst[1..=n], &src[..n], "{n}");
            assert!(dst[n + 1..].iter().all(|&b| b == 0), "{n}");
        }
    }
}
