//! One direction of a connection: where the stream starts, what has been delivered, and the
//! bytes waiting for a hole before them to be filled.
//!
//! Overlap policy: **first copy wins.** Bytes already delivered or already buffered are never
//! replaced by a later copy; only the parts of a segment nobody has seen yet are kept. Real
//! retransmissions carry identical bytes, so the policy only matters for crafted or corrupted
//! traffic, where it makes the delivered stream independent of later (attacker-chosen) copies.
//! A later copy that differs from buffered bytes is counted as a conflict. Delivered bytes are
//! not kept, so a differing copy of them is counted as a plain duplicate; it cannot change them
//! either way.
use std::collections::{BTreeMap, BTreeSet};

use crate::segment::Timestamp;

/// A run of buffered bytes at a known offset.
pub(super) struct Piece {
    pub data: Vec<u8>,
    /// Capture time of the segment that brought these bytes.
    pub ts: Timestamp,
    /// Time used to order this piece against the other direction. A piece that fills a hole
    /// takes the time of the buffered data after it: those bytes were sent later than the
    /// missing ones, whatever time the retransmission arrived.
    pub order_ts: Timestamp,
}

/// `data` as a length only: it is raw stream content (credentials, prompts).
impl std::fmt::Debug for Piece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Piece")
            .field("bytes", &self.data.len())
            .field("ts", &self.ts)
            .field("order_ts", &self.order_ts)
            .finish()
    }
}

/// Result of placing a segment's payload into a half-stream.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Placement {
    /// Offset where the new (never seen) bytes start, if any is at the delivery point.
    pub in_order_skip: Option<usize>,
    /// Bytes dropped because an earlier copy exists (first copy wins).
    pub duplicate_bytes: u64,
    /// Bytes newly buffered out of order.
    pub buffered_bytes: u64,
    /// Bytes of the payload that overlap buffered bytes with a different value (the buffered
    /// copy stays).
    pub conflicting_bytes: u64,
    /// Pieces created by this placement.
    pub buffered_pieces: usize,
}

#[derive(Debug, Default)]
pub(super) struct Half {
    /// Sequence number of stream offset 0 (ISN + 1 after a SYN); `None` until known.
    pub base: Option<u32>,
    pub syn_seen: bool,
    /// This direction showed itself inside its window: a SYN, or payload taken.
    pub live: bool,
    /// Since when segments arrive outside the window with none inside it (see
    /// `window_resync_ms`).
    pub out_of_window_since: Option<Timestamp>,
    /// Next offset to deliver; everything before it went to the consumer (or was a gap).
    pub delivered: u64,
    /// Buffered bytes at offsets `>= delivered`, non-overlapping, keyed by offset.
    pieces: BTreeMap<u64, Piece>,
    /// `(ts, offset)` of every entry of `pieces`, so the oldest one is found without walking
    /// them: behind a lost segment thousands of pieces wait, and `oldest_pending` is asked on
    /// every segment of the connection. Kept in step by `place` and `pop_ready`, the only
    /// places that change `pieces`.
    by_ts: BTreeSet<(Timestamp, u64)>,
    /// Sum of `pieces` lengths.
    pub buffered: usize,
    /// Offset of the FIN (one past the last byte), once seen.
    pub fin_at: Option<u64>,
    /// Capture time of the FIN.
    pub fin_ts: Timestamp,
    /// The consumer was told about the FIN.
    pub fin_delivered: bool,
    /// Bytes skipped on purpose before `delivered`, not yet reported to the consumer (see
    /// [`Half::start_skip`]).
    pub skip: Option<Skip>,
    /// The last skip range was chunked (`SkipRange::chunked`): where it ends and the
    /// capture's counters accounted for so far. Boxed: only a connection whose last skipped
    /// body was chunked has one, and inline its 24 bytes per direction would take every
    /// connection's table entry into the allocator's next size class (64 bytes more each).
    pub chunked: Option<Box<ChunkedSkip>>,
}

/// A chunked skip range: it ends at offset `end` (moved on by every extension the capture
/// reports), and the capture's counters (`CaptureSkip`) were `chunks` and `data` there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChunkedSkip {
    pub end: u64,
    pub chunks: u16,
    pub data: u32,
}

/// Bytes the consumer asked not to see: the `len` bytes before `delivered` at the time they
/// were skipped. Reported once
/// the stream is known to have passed `delivered` (data or a FIN at or beyond it, or the
/// capture's zero-length mark of the end), so the consumer learns when the skipped bytes
/// ended, as it would have from the bytes themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Skip {
    pub len: u64,
}

impl Half {
    /// Number of buffered pieces.
    pub fn piece_count(&self) -> usize {
        self.pieces.len()
    }

    /// Bytes are missing before buffered data or before the FIN.
    pub fn has_hole(&self) -> bool {
        match self.pieces.first_key_value() {
            Some((&at, _)) => at > self.delivered,
            None => self.fin_at.is_some_and(|f| f > self.delivered),
        }
    }

    /// The first piece, if it starts at the delivery point.
    pub fn ready(&self) -> Option<&Piece> {
        self.pieces
            .first_key_value()
            .filter(|(at, _)| **at == self.delivered)
            .map(|(_, p)| p)
    }

    /// Places `payload` (starting at stream offset `at`) into the half-stream.
    ///
    /// When the new bytes start exactly at the delivery point and nothing is buffered, nothing is
    /// copied: `in_order_skip` tells the caller which suffix of `payload` to deliver itself
    /// (`buffer_in_order` forces a copy instead, used while the other direction waits for a hole).
    pub fn place(
        &mut self,
        at: u64,
        payload: &[u8],
        ts: Timestamp,
        buffer_in_order: bool,
    ) -> Placement {
        let mut out = Placement::default();
        let end = at + payload.len() as u64;
        if end <= self.delivered {
            out.duplicate_bytes = payload.len() as u64;
            return out;
        }
        let start = at.max(self.delivered);
        out.duplicate_bytes += start - at;
        if start == self.delivered && self.pieces.is_empty() && !buffer_in_order {
            out.in_order_skip = Some((start - at) as usize);
            return out;
        }
        // Copy only the sub-ranges of [start, end) no buffered piece covers.
        let mut cursor = start;
        let overlapping: Vec<(u64, u64)> = self
            .pieces
            .range(..end)
            .rev()
            .map(|(&k, p)| (k, k + p.data.len() as u64))
            .take_while(|&(_, e)| e > start)
            .collect();
        // `overlapping` is in descending order; walk it ascending.
        let mut new_ranges = Vec::new();
        for &(s, e) in overlapping.iter().rev() {
            let (from, to) = (s.max(start), e.min(end));
            if let Some(piece) = self.pieces.get(&s)
                && from < to
            {
                let old = &piece.data[(from - s) as usize..(to - s) as usize];
                let new = &payload[(from - at) as usize..(to - at) as usize];
                out.conflicting_bytes += old.iter().zip(new).filter(|(a, b)| a != b).count() as u64;
            }
            if s > cursor {
                new_ranges.push((cursor, s.min(end)));
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            new_ranges.push((cursor, end));
        }
        let new_len: u64 = new_ranges.iter().map(|(s, e)| e - s).sum();
        out.duplicate_bytes += (end - start) - new_len;
        // A piece that lands before buffered data fills (part of) a hole: order it by the time of
        // the data that follows it.
        for (s, e) in new_ranges {
            let order_ts = self
                .pieces
                .range(e..)
                .next()
                .map_or(ts, |(_, p)| p.order_ts.min(ts));
            let data = payload[(s - at) as usize..(e - at) as usize].to_vec();
            self.buffered += data.len();
            out.buffered_bytes += data.len() as u64;
            out.buffered_pieces += 1;
            self.pieces.insert(s, Piece { data, ts, order_ts });
            self.by_ts.insert((ts, s));
        }
        out
    }

    /// Removes and returns the piece at the delivery point, advancing past it.
    pub fn pop_ready(&mut self) -> Option<Piece> {
        let entry = self.pieces.first_entry()?;
        if *entry.key() != self.delivered {
            return None;
        }
        let piece = entry.remove();
        self.by_ts.remove(&(piece.ts, self.delivered));
        self.buffered -= piece.data.len();
        self.delivered += piece.data.len() as u64;
        Some(piece)
    }

    /// Declares the hole before the first buffered piece (or before the FIN, when nothing is
    /// buffered) lost; returns its length (0: no hole).
    pub fn skip_hole(&mut self) -> u64 {
        let next = match self.pieces.first_key_value() {
            Some((&at, _)) => Some(at),
            None => self.fin_at,
        };
        match next {
            Some(at) if at > self.delivered => {
                let len = at - self.delivered;
                self.delivered = at;
                len
            }
            _ => 0,
        }
    }

    /// Skips the next `len` bytes on purpose: `delivered` moves past them at once (they are
    /// no hole), buffered bytes among them are dropped. Returns the buffered bytes dropped.
    pub fn start_skip(&mut self, len: u64) -> usize {
        let from = self.delivered;
        let to = from + len;
        self.delivered = to;
        self.skip = Some(Skip {
            len: self.skip.map_or(0, |s| s.len) + len,
        });
        let mut dropped = 0;
        while let Some(entry) = self.pieces.first_entry() {
            let at = *entry.key();
            if at >= to {
                break;
            }
            let piece = entry.remove();
            self.by_ts.remove(&(piece.ts, at));
            let end = at + piece.data.len() as u64;
            self.buffered -= piece.data.len();
            if end <= to {
                dropped += piece.data.len();
                continue;
            }
            // Keep the part after the skipped bytes.
            let cut = (to - at) as usize;
            dropped += cut;
            let data = piece.data[cut..].to_vec();
            self.buffered += data.len();
            self.by_ts.insert((piece.ts, to));
            self.pieces.insert(to, Piece { data, ..piece });
        }
        dropped
    }

    /// The skip in progress ends: returns how many bytes it skipped.
    pub fn end_skip(&mut self) -> Option<u64> {
        self.skip.take().map(|s| s.len)
    }

    /// The FIN is due: every byte before it was delivered and the consumer was not told yet.
    pub fn fin_due(&self) -> bool {
        !self.fin_delivered && self.fin_at.is_some_and(|f| f <= self.delivered)
    }

    /// Oldest capture time of what waits for a hole: buffered data, or a FIN ahead of missing
    /// bytes.
    pub fn oldest_pending(&self) -> Option<Timestamp> {
        let pieces = self.by_ts.first().map(|&(ts, _)| ts);
        let fin = (self.pieces.is_empty() && self.has_hole()).then_some(self.fin_ts);
        pieces.into_iter().chain(fin).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(n: u64) -> Timestamp {
        Timestamp::from_nanos(n)
    }

    fn collect(h: &mut Half) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(p) = h.pop_ready() {
            v.extend_from_slice(&p.data);
        }
        v
    }

    #[test]
    fn in_order_is_not_copied() {
        let mut h = Half::default();
        let p = h.place(0, b"hello", ts(1), false);
        assert_eq!(p.in_order_skip, Some(0));
        assert_eq!(h.buffered, 0);
    }

    #[test]
    fn partial_retransmission_delivers_only_new_suffix() {
        let mut h = Half {
            delivered: 3,
            ..Half::default()
        };
        let p = h.place(0, b"hello", ts(1), false);
        assert_eq!(p.in_order_skip, Some(3));
        assert_eq!(p.duplicate_bytes, 3);
    }

    #[test]
    fn first_copy_wins_over_buffered_bytes() {
        let mut h = Half::default();
        h.place(2, b"CD", ts(1), false);
        let p = h.place(1, b"xyzw", ts(2), false); // offsets 1..5, 2..4 already buffered
        assert_eq!(p.duplicate_bytes, 2);
        assert_eq!(p.buffered_bytes, 2);
        h.place(0, b"A", ts(3), true);
        assert_eq!(collect(&mut h), b"AxCDw");
        assert_eq!(h.buffered, 0);
    }

    #[test]
    fn differing_overlap_is_a_conflict_and_keeps_the_first_copy() {
        let mut h = Half::default();
        h.place(2, b"CDEF", ts(1), false);
        // Offsets 1..7: 2..6 overlaps "CDEF" with "CxEy" (two bytes differ).
        let p = h.place(1, b"BCxEyG", ts(2), false);
        assert_eq!(p.conflicting_bytes, 2);
        assert_eq!(p.duplicate_bytes, 4);
        assert_eq!(p.buffered_bytes, 2);
        let p = h.place(2, b"CDEF", ts(3), false);
        assert_eq!(p.conflicting_bytes, 0);
        h.place(0, b"A", ts(4), true);
        assert_eq!(collect(&mut h), b"ABCDEFG");
    }

    #[test]
    fn filler_takes_time_of_following_data() {
        let mut h = Half::default();
        h.place(5, b"later", ts(10), false);
        h.place(0, b"first", ts(20), true);
        let first = h.pop_ready().expect("piece");
        assert_eq!(first.ts, ts(20));
        assert_eq!(first.order_ts, ts(10));
    }

    /// The `(ts, offset)` index, in its order (oldest first).
    fn index(h: &Half) -> Vec<(Timestamp, u64)> {
        h.by_ts.iter().copied().collect()
    }

    #[test]
    fn oldest_is_the_earliest_piece_not_the_first_by_offset() {
        let mut h = Half::default();
        h.place(10, b"b", ts(5), false);
        h.place(20, b"c", ts(3), false);
        h.place(30, b"d", ts(7), false);
        assert_eq!(index(&h), [(ts(3), 20), (ts(5), 10), (ts(7), 30)]);
        assert_eq!(h.oldest_pending(), Some(ts(3)));
    }

    #[test]
    fn segment_split_around_a_buffered_piece_indexes_each_new_piece() {
        let mut h = Half::default();
        h.place(4, b"EF", ts(5), false);
        // Offsets 1..8; 4..6 is buffered already, so 1..4 and 6..8 become pieces.
        let p = h.place(1, b"bcdefgh", ts(9), false);
        assert_eq!(p.buffered_pieces, 2);
        assert_eq!(index(&h), [(ts(5), 4), (ts(9), 1), (ts(9), 6)]);
        assert_eq!(h.oldest_pending(), Some(ts(5)));
    }

    #[test]
    fn duplicate_copy_leaves_the_index_alone() {
        let mut h = Half::default();
        h.place(5, b"xy", ts(3), false);
        let p = h.place(5, b"xy", ts(1), false);
        assert_eq!(p.duplicate_bytes, 2);
        assert_eq!(index(&h), [(ts(3), 5)]);
        assert_eq!(h.oldest_pending(), Some(ts(3)));
    }

    #[test]
    fn delivering_the_oldest_piece_moves_oldest_to_the_next() {
        let mut h = Half::default();
        h.place(5, b"x", ts(2), false);
        h.place(10, b"y", ts(4), false);
        h.place(0, b"abcde", ts(8), true);
        assert_eq!(collect(&mut h), b"abcdex"); // stops at the hole 6..10
        assert_eq!(index(&h), [(ts(4), 10)]);
        assert_eq!(h.oldest_pending(), Some(ts(4)));
    }

    #[test]
    fn pieces_with_equal_times_leave_one_at_a_time() {
        let mut h = Half::default();
        h.place(5, b"x", ts(3), false);
        h.place(10, b"y", ts(3), false);
        h.place(0, b"abcde", ts(8), true);
        assert_eq!(collect(&mut h), b"abcdex");
        assert_eq!(index(&h), [(ts(3), 10)]);
        assert_eq!(h.oldest_pending(), Some(ts(3)));
    }

    #[test]
    fn skipping_a_hole_keeps_the_pieces_indexed_until_delivered() {
        let mut h = Half::default();
        h.place(10, b"xy", ts(6), false);
        assert_eq!(h.skip_hole(), 10);
        assert_eq!(index(&h), [(ts(6), 10)]);
        assert_eq!(collect(&mut h), b"xy");
        assert_eq!(index(&h), []);
        assert_eq!(h.oldest_pending(), None);
    }

    #[test]
    fn fin_ahead_of_a_hole_is_pending_once_no_piece_is() {
        let mut h = Half {
            fin_at: Some(8),
            fin_ts: ts(9),
            ..Half::default()
        };
        h.place(3, b"d", ts(4), false);
        assert_eq!(h.oldest_pending(), Some(ts(4)));
        h.place(0, b"abc", ts(5), true);
        assert_eq!(collect(&mut h), b"abcd");
        assert_eq!(index(&h), []);
        assert_eq!(h.oldest_pending(), Some(ts(9)));
    }

    #[test]
    fn a_skip_moves_past_its_bytes_and_drops_what_is_buffered_among_them() {
        let mut h = Half {
            delivered: 10,
            ..Half::default()
        };
        h.place(12, b"ab", ts(1), false); // inside the skip
        h.place(18, b"cdefg", ts(2), false); // crosses its end (20)
        assert_eq!(h.start_skip(10), 4);
        assert_eq!(h.delivered, 20);
        assert!(!h.has_hole());
        assert_eq!(index(&h), [(ts(2), 20)]);
        assert_eq!(h.buffered, 3);
        assert_eq!(collect(&mut h), b"efg");
        // Reported once, with the bytes asked for, however far delivery went since.
        assert_eq!(h.end_skip(), Some(10));
        assert_eq!(h.end_skip(), None);
    }

    #[test]
    fn skip_hole_reports_length() {
        let mut h = Half::default();
        h.place(10, b"xy", ts(1), false);
        assert!(h.has_hole());
        assert_eq!(h.skip_hole(), 10);
        assert!(!h.has_hole());
        assert_eq!(collect(&mut h), b"xy");
        assert_eq!(h.delivered, 12);
    }

    proptest::proptest! {
        /// Whatever is placed, delivered or skipped, the index holds exactly the pieces' times
        /// and offsets.
        #[test]
        fn index_matches_pieces(
            ops in proptest::collection::vec((0u64..64, 1usize..8, 0u64..16, 0u8..4), 0..60),
        ) {
            let mut h = Half::default();
            for (at, len, t, op) in ops {
                match op {
                    0 => { h.skip_hole(); }
                    _ => { h.place(at, &vec![0; len], ts(t), op == 1); }
                }
                while h.pop_ready().is_some() {}
                let expected: BTreeSet<(Timestamp, u64)> =
                    h.pieces.iter().map(|(&at, p)| (p.ts, at)).collect();
                proptest::prop_assert_eq!(&h.by_ts, &expected);
                let oldest = h.pieces.values().map(|p| p.ts).min();
                proptest::prop_assert_eq!(h.by_ts.first().map(|&(t, _)| t), oldest);
            }
        }
    }
}
