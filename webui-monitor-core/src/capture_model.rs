//! What the kernel capture hands to userspace, for segments read from a capture file: the
//! skip ranges it applies ([`SkipFilter`]) and the ring bytes its records take
//! ([`ring_bytes`]). `replay` runs segments through both, so it yields what the daemon would
//! have seen and measures what the ring would have carried. The rules here are the kernel's
//! (`webui-monitor-ebpf/src/capture.rs`); a change there is a change here.
use std::collections::HashMap;

use webui_monitor_common::{CHUNK_DATA_SIZE, ChunkHeader, MAX_CHUNKS_PER_SEGMENT, RECORD_CLASSES};

use crate::{
    reassembly::{SkipCommand, SkipRange},
    segment::{ConnectionKey, Direction, Segment},
};

/// The capture's table of skip ranges, one per connection and direction, and its rule.
#[derive(Debug, Default)]
pub struct SkipFilter {
    ranges: HashMap<(ConnectionKey, Direction), SkipRange>,
    /// Payload bytes not copied (the kernel's `CaptureStats::skipped_bytes`).
    pub skipped_bytes: u64,
}

impl SkipFilter {
    /// Applies one command of [`Monitor::poll_skip`](crate::Monitor::poll_skip).
    pub fn apply(&mut self, command: SkipCommand) {
        match command {
            SkipCommand::Skip { connection, range } => {
                self.ranges.insert((connection, range.direction), range);
            }
            SkipCommand::Forget { connection } => {
                for direction in Direction::ALL {
                    self.ranges.remove(&(connection, direction));
                }
            }
        }
    }

    /// Ranges held (a connection's two directions count twice).
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether no range is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// What the capture sends of `segment`: itself (outside every range); the part from the
    /// range's end (it starts inside a range and ends beyond); without its payload, at the
    /// payload's end (it lies inside a range and carries SYN, FIN or RST, or ends exactly where
    /// the range does: the mark that tells when the skipped bytes ended); or nothing (inside a
    /// range).
    pub fn filter<'a>(&mut self, segment: &Segment<'a>) -> Option<Segment<'a>> {
        let len = segment.payload.len() as u32;
        if len == 0 {
            return Some(*segment);
        }
        let Some(range) = self.ranges.get(&(segment.key, segment.direction)) else {
            return Some(*segment);
        };
        let end = segment.seq.wrapping_add(len);
        let starts_inside = segment.seq.wrapping_sub(range.from) as i32 >= 0
            && range.to.wrapping_sub(segment.seq) as i32 > 0;
        if !starts_inside {
            return Some(*segment);
        }
        if !covers(range, segment.seq, end) {
            // Crosses the range's end: only the bytes from there on are copied.
            let cut = range.to.wrapping_sub(segment.seq);
            self.skipped_bytes += u64::from(cut);
            return Some(Segment {
                seq: range.to,
                payload: &segment.payload[cut as usize..],
                ..*segment
            });
        }
        self.skipped_bytes += u64::from(len);
        let control = segment.flags.syn() || segment.flags.fin() || segment.flags.rst();
        (control || end == range.to).then_some(Segment {
            seq: end,
            payload: &[],
            ..*segment
        })
    }
}

/// The kernel's test: the bytes `[start, end)` lie inside `range` (wrap-around-safe).
pub fn covers(range: &SkipRange, start: u32, end: u32) -> bool {
    start.wrapping_sub(range.from) as i32 >= 0 && range.to.wrapping_sub(end) as i32 >= 0
}

/// Ring bytes the kernel's records of `segment` take: one record per chunk of up to
/// [`CHUNK_DATA_SIZE`] payload bytes (at least one when it carries SYN, FIN or RST, none for
/// a bare ACK), each a [`ChunkHeader`] and the room of the smallest size class that holds its
/// chunk, plus the ring's own 8-byte header, rounded up to 8.
pub fn ring_bytes(segment: &Segment<'_>) -> u64 {
    let len = segment.payload.len();
    let control = segment.flags.syn() || segment.flags.fin() || segment.flags.rst();
    if len == 0 && !control {
        return 0;
    }
    let chunks = len
        .div_ceil(CHUNK_DATA_SIZE)
        .clamp(1, MAX_CHUNKS_PER_SEGMENT);
    (0..chunks)
        .map(|i| {
            let chunk = (len - (i * CHUNK_DATA_SIZE).min(len)).min(CHUNK_DATA_SIZE);
            let room = RECORD_CLASSES
                .iter()
                .copied()
                .find(|&c| c >= chunk)
                .unwrap_or(CHUNK_DATA_SIZE);
            let record = size_of::<ChunkHeader>() + room;
            ((record + 8 + 7) & !7) as u64
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::segment::{TcpFlags, Timestamp};

    fn key() -> ConnectionKey {
        ConnectionKey {
            client: SocketAddr::from((Ipv4Addr::LOCALHOST, 50000)),
            server: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
        }
    }

    fn seg(seq: u32, flags: u8, payload: &[u8]) -> Segment<'_> {
        Segment {
            key: key(),
            direction: Direction::Response,
            seq,
            flags: TcpFlags(flags),
            payload,
            timestamp: Timestamp::from_secs(1),
            after_capture_loss: false,
        }
    }

    #[test]
    fn ring_bytes_follow_the_size_classes() {
        assert_eq!(ring_bytes(&seg(0, TcpFlags::ACK, b"")), 0);
        assert_eq!(ring_bytes(&seg(0, TcpFlags::FIN, b"")), 72);
        assert_eq!(ring_bytes(&seg(0, TcpFlags::ACK, &[0; 10])), 64 + 64 + 8);
        assert_eq!(ring_bytes(&seg(0, TcpFlags::ACK, &[0; 1448])), 1536 + 8);
        // Two full chunks and one of 100 bytes (class 192).
        let len = 2 * CHUNK_DATA_SIZE + 100;
        assert_eq!(
            ring_bytes(&seg(0, TcpFlags::ACK, &vec![0; len])),
            2 * (2048 + 8) + (64 + 192 + 8)
        );
    }

    #[test]
    fn inside_dropped_end_marked_crossing_kept() {
        let mut f = SkipFilter::default();
        let range = SkipRange {
            direction: Direction::Response,
            from: u32::MAX - 99,
            to: 200,
        };
        f.apply(SkipCommand::Skip {
            connection: key(),
            range,
        });
        let data = [0u8; 100];
        assert!(
            f.filter(&seg(u32::MAX - 99, TcpFlags::ACK, &data))
                .is_none()
        );
        let mark = f.filter(&seg(100, TcpFlags::ACK, &data)).expect("mark");
        assert_eq!((mark.seq, mark.payload.len()), (200, 0));
        let crossing = f.filter(&seg(150, TcpFlags::ACK, &data)).expect("kept");
        assert_eq!((crossing.seq, crossing.payload.len()), (200, 50));
        let after = f.filter(&seg(200, TcpFlags::ACK, &data)).expect("kept");
        assert_eq!((after.seq, after.payload.len()), (200, 100));
        let fin = f.filter(&seg(0, TcpFlags::FIN, &data)).expect("fin");
        assert_eq!((fin.seq, fin.payload.len()), (100, 0));
        // Before the range: kept.
        assert!(
            f.filter(&seg(u32::MAX - 200, TcpFlags::ACK, &data))
                .is_some()
        );
        assert_eq!(f.skipped_bytes, 350);
        f.apply(SkipCommand::Forget { connection: key() });
        assert!(f.is_empty());
    }
}
