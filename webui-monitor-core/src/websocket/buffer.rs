//! Buffers with a hard cap, for the message and inflate layers.

/// Makes room for `additional` bytes in a buffer that never holds more than `cap`: amortised
/// doubling like `Vec`'s, but the capacity never overshoots the cap.
pub(super) fn reserve_within(buf: &mut Vec<u8>, additional: usize, cap: usize) {
    let needed = buf.len().saturating_add(additional);
    if needed <= buf.capacity() {
        return;
    }
    let target = needed
        .max(buf.capacity().saturating_mul(2))
        .min(cap.max(needed));
    buf.reserve_exact(target - buf.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_within_never_overshoots_the_cap() {
        let mut buf = Vec::new();
        for _ in 0..100 {
            let room = 1000usize.saturating_sub(buf.len()).min(100);
            reserve_within(&mut buf, room, 1000);
            buf.extend(std::iter::repeat_n(0u8, room));
            assert!(buf.capacity() <= 1000, "{}", buf.capacity());
        }
        assert_eq!(buf.len(), 1000);
    }
}
