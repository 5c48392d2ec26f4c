//! TCP sequence-number arithmetic that survives the 2^32 wrap-around.
//!
//! Each half-stream works in 64-bit *stream offsets* (bytes since the first payload byte), which
//! never wrap. A 32-bit sequence number is mapped to the offset closest to a reference offset the
//! stream already knows (the next byte it expects): RFC 793 windows are far below 2^31, so the
//! nearest candidate is the right one.

/// Maps `seq` to the 64-bit stream offset nearest to `reference`.
///
/// `base` is the sequence number of offset 0. Returns `None` when the nearest candidate lies
/// before offset 0 (a segment from before the stream start, e.g. a stray retransmission of the
/// SYN's payload when the pickup was mid-stream).
pub fn offset_of(seq: u32, base: u32, reference: u64) -> Option<u64> {
    let rel = seq.wrapping_sub(base);
    // Signed distance, in 32-bit space, from the reference to `seq`.
    let delta = rel.wrapping_sub(reference as u32) as i32;
    reference.checked_add_signed(i64::from(delta))
}

/// Signed distance from the stream offset `reference` to `seq` (positive: ahead), taking the
/// nearest candidate as [`offset_of`] does.
pub fn distance(seq: u32, base: u32, reference: u64) -> i64 {
    i64::from(seq.wrapping_sub(base).wrapping_sub(reference as u32) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_is_signed_and_wraps() {
        assert_eq!(distance(1500, 1000, 400), 100);
        assert_eq!(distance(1300, 1000, 400), -100);
        let base = u32::MAX - 9; // offset 10 is seq 0
        assert_eq!(distance(5, base, 12), 3);
        assert_eq!(distance(u32::MAX, base, 12), -3);
        assert_eq!(distance(base.wrapping_add(1 << 31), base, 0), -(1 << 31));
    }

    #[test]
    fn plain_offsets() {
        assert_eq!(offset_of(1000, 1000, 0), Some(0));
        assert_eq!(offset_of(1500, 1000, 0), Some(500));
        assert_eq!(offset_of(1500, 1000, 400), Some(500));
        assert_eq!(offset_of(1200, 1000, 400), Some(200));
    }

    #[test]
    fn before_start_is_none() {
        assert_eq!(offset_of(999, 1000, 0), None);
        assert_eq!(offset_of(0, 10, 5), None);
    }

    #[test]
    fn wraps_around_u32() {
        let base = u32::MAX - 9; // offset 10 is seq 0
        assert_eq!(offset_of(0, base, 0), Some(10));
        assert_eq!(offset_of(5, base, 12), Some(15));
        assert_eq!(offset_of(u32::MAX, base, 12), Some(9));
    }

    #[test]
    fn beyond_four_gigabytes() {
        // 5 GiB into a stream, the sequence number has wrapped once.
        let reference = 5u64 << 30;
        let base = 77u32;
        let seq = base.wrapping_add(reference as u32).wrapping_add(100);
        assert_eq!(offset_of(seq, base, reference), Some(reference + 100));
        let seq = base.wrapping_add(reference as u32).wrapping_sub(100);
        assert_eq!(offset_of(seq, base, reference), Some(reference - 100));
    }
}
