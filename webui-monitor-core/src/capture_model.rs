//! What the kernel capture hands to userspace, for segments read from a capture file: the
//! skip ranges it applies ([`SkipFilter`]) and the ring bytes its records take
//! ([`ring_bytes`]). `replay` runs segments through both, so it yields what the daemon would
//! have seen and measures what the ring would have carried. The rules here are the kernel's
//! (`webui-monitor-ebpf/src/capture.rs`); a change there is a change here.
use std::collections::HashMap;

use webui_monitor_common::{
    CHUNK_DATA_SIZE, CHUNK_LINE_WINDOW, ChunkHeader, MAX_CHUNK_LINES_PER_SEGMENT,
    MAX_CHUNKS_PER_SEGMENT, RECORD_CLASSES, chunk_line,
};

use crate::{
    reassembly::{SkipCommand, SkipRange},
    segment::{CaptureSkip, ConnectionKey, Direction, Segment},
};

/// One direction's span as the kernel holds it (`SkipSpan`): the range userspace wrote, its
/// end moved along a chunked body, and the counters of the chunks followed.
#[derive(Debug, Clone, Copy)]
struct Span {
    from: u32,
    to: u32,
    chunked: bool,
    chunks: u16,
    data: u32,
}

/// The capture's table of skip ranges, one per connection and direction, and its rule.
#[derive(Debug, Default)]
pub struct SkipFilter {
    ranges: HashMap<(ConnectionKey, Direction), Span>,
    /// Payload bytes not copied (the kernel's `CaptureStats::skipped_bytes`).
    pub skipped_bytes: u64,
}

impl SkipFilter {
    /// Applies one command of [`Monitor::poll_skip`](crate::Monitor::poll_skip).
    pub fn apply(&mut self, command: SkipCommand) {
        match command {
            SkipCommand::Skip { connection, range } => {
                let span = Span {
                    from: range.from,
                    to: range.to,
                    chunked: range.chunked,
                    chunks: 0,
                    data: 0,
                };
                self.ranges.insert((connection, range.direction), span);
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

    /// The range of `connection`'s `direction` as the capture holds it now (a chunked one's
    /// end moved along its body).
    pub fn range(&self, connection: ConnectionKey, direction: Direction) -> Option<SkipRange> {
        self.ranges
            .get(&(connection, direction))
            .map(|span| SkipRange {
                direction,
                from: span.from,
                to: span.to,
                chunked: span.chunked,
            })
    }

    /// What the capture sends of `segment`: itself (outside every range); the part from the
    /// range's end (it starts inside a range and ends beyond); without its payload, at the
    /// payload's end (it lies inside a range and carries SYN, FIN or RST, or ends exactly where
    /// the range does: the mark that tells when the skipped bytes ended); or nothing (inside a
    /// range). A chunked range is first followed along the chunk-size lines at its end that
    /// lie in the segment (at most [`MAX_CHUNK_LINES_PER_SEGMENT`], see [`chunk_line`]), also
    /// when the segment starts exactly at its end; such a segment also sends when it moved the
    /// range, and what it sends starts at the range's end and carries the range's counters
    /// ([`Segment::capture_skip`]: the kernel's mark record, then the payload's).
    ///
    /// One difference from the kernel: its XDP program reads no packet byte past frame offset
    /// 65,535 (`bpf_xdp_load_bytes`), so a size line that starts in the last bytes (at most
    /// the Ethernet header's 14) of a 64 KB loopback frame is not followed there; the model,
    /// which does not know the frame's header lengths, follows it.
    pub fn filter<'a>(&mut self, segment: &Segment<'a>) -> Option<Segment<'a>> {
        let len = segment.payload.len() as u32;
        if len == 0 {
            return Some(*segment);
        }
        let Some(span) = self.ranges.get_mut(&(segment.key, segment.direction)) else {
            return Some(*segment);
        };
        let start = segment.seq;
        let end = start.wrapping_add(len);
        let before_end = span.to.wrapping_sub(start) as i32;
        if (start.wrapping_sub(span.from) as i32) < 0
            || before_end < 0
            || (before_end == 0 && !span.chunked)
        {
            return Some(*segment);
        }
        let mut mark = None;
        let mut moved = false;
        if span.chunked {
            let before = span.to;
            follow_chunks(span, start, segment.payload);
            moved = span.to != before;
            mark = Some(CaptureSkip {
                chunks: span.chunks,
                data: span.data,
            });
        }
        let to = span.to;
        if to.wrapping_sub(end) as i32 >= 0 {
            // Lies inside the range.
            self.skipped_bytes += u64::from(len);
            let control = segment.flags.syn() || segment.flags.fin() || segment.flags.rst();
            return (control || end == to || moved).then_some(Segment {
                // A chunked range's mark lies at its end (see `SkipSpan`).
                seq: if mark.is_some() { to } else { end },
                payload: &[],
                capture_skip: mark,
                ..*segment
            });
        }
        // Crosses the range's end: only the bytes from there on are copied.
        let cut = to.wrapping_sub(start);
        self.skipped_bytes += u64::from(cut);
        Some(Segment {
            seq: to,
            payload: &segment.payload[cut as usize..],
            capture_skip: mark,
            ..*segment
        })
    }
}

/// The kernel's `follow_chunks`: moves `span`'s end along the chunk-size lines at it that lie
/// in `payload` (whose first byte has sequence number `start`).
fn follow_chunks(span: &mut Span, start: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    for _ in 0..MAX_CHUNK_LINES_PER_SEGMENT {
        let at = span.to.wrapping_sub(start);
        if at >= len {
            return;
        }
        let avail = (len - at).min(CHUNK_LINE_WINDOW as u32);
        let mut window = [0; CHUNK_LINE_WINDOW];
        window[..avail as usize].copy_from_slice(&payload[at as usize..(at + avail) as usize]);
        let Some((line, size)) = chunk_line(&window) else {
            return;
        };
        span.to = span
            .to
            .wrapping_add(line)
            .wrapping_add(size)
            .wrapping_add(2);
        span.chunks = span.chunks.wrapping_add(1);
        span.data = span.data.wrapping_add(size);
    }
}

/// Ring bytes the kernel's records of `segment` take: one record per chunk of up to
/// [`CHUNK_DATA_SIZE`] payload bytes (at least one when it carries SYN, FIN or RST, none for
/// a bare ACK), each a [`ChunkHeader`] and the room of the smallest size class that holds its
/// chunk, plus the ring's own 8-byte header, rounded up to 8; and a record without payload
/// before them for the mark of a chunked skip span ([`Segment::capture_skip`]), which also
/// carries the flags of a segment with no payload left.
pub fn ring_bytes(segment: &Segment<'_>) -> u64 {
    let record = |room: usize| ((size_of::<ChunkHeader>() + room + 8 + 7) & !7) as u64;
    let len = segment.payload.len();
    let mark = if segment.capture_skip.is_some() {
        record(0)
    } else {
        0
    };
    let control = segment.flags.syn() || segment.flags.fin() || segment.flags.rst();
    if len == 0 && (mark != 0 || !control) {
        return mark;
    }
    let chunks = len
        .div_ceil(CHUNK_DATA_SIZE)
        .clamp(1, MAX_CHUNKS_PER_SEGMENT);
    mark + (0..chunks)
        .map(|i| {
            let chunk = (len - (i * CHUNK_DATA_SIZE).min(len)).min(CHUNK_DATA_SIZE);
            let room = RECORD_CLASSES
                .iter()
                .copied()
                .find(|&c| c >= chunk)
                .unwrap_or(CHUNK_DATA_SIZE);
            record(room)
        })
        .sum::<u64>()
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
            capture_skip: None,
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
        // A chunked skip span's mark is a record of its own, which carries a FIN without
        // payload.
        let after_skip = |s: Segment<'static>| Segment {
            capture_skip: marked(1, 3),
            ..s
        };
        assert_eq!(ring_bytes(&after_skip(seg(0, TcpFlags::ACK, b""))), 72);
        assert_eq!(ring_bytes(&after_skip(seg(0, TcpFlags::FIN, b""))), 72);
        assert_eq!(
            ring_bytes(&after_skip(seg(0, TcpFlags::ACK, &[0; 10]))),
            72 + 64 + 64 + 8
        );
    }

    #[test]
    fn inside_dropped_end_marked_crossing_kept() {
        let mut f = SkipFilter::default();
        let range = SkipRange {
            direction: Direction::Response,
            from: u32::MAX - 99,
            to: 200,
            chunked: false,
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

    fn chunked(from: u32, to: u32) -> SkipCommand {
        SkipCommand::Skip {
            connection: key(),
            range: SkipRange {
                direction: Direction::Response,
                from,
                to,
                chunked: true,
            },
        }
    }

    /// `(seq, payload, counters)` of what the capture sends.
    fn sent<'a>(
        f: &mut SkipFilter,
        s: &Segment<'a>,
    ) -> Option<(u32, &'a [u8], Option<CaptureSkip>)> {
        f.filter(s).map(|s| (s.seq, s.payload, s.capture_skip))
    }

    fn marked(chunks: u16, data: u32) -> Option<CaptureSkip> {
        Some(CaptureSkip { chunks, data })
    }

    /// Chunked ranges followed along their bodies. The kernel's test
    /// (`tests/tests/prog_test_run.rs`: `a_chunked_span_follows_the_body`) sends the same
    /// segments and expects the same records.
    #[test]
    fn a_chunked_range_follows_the_body() {
        let mut f = SkipFilter::default();
        // An empty range at the first size line; three lines in the segment, the third
        // chunk's data runs past its end: the range moved to the fourth line, and the mark
        // says so.
        f.apply(chunked(1000, 1000));
        let a = [
            b"10\r\n".as_slice(),
            &[b'a'; 16],
            b"\r\n8\r\n",
            &[b'b'; 8],
            b"\r\n20\r\n",
            &[b'c'; 10],
        ]
        .concat();
        assert_eq!(
            sent(&mut f, &seg(1000, TcpFlags::ACK, &a)),
            Some((1073, b"".as_slice(), marked(3, 56)))
        );
        let range = f.range(key(), Direction::Response).expect("range");
        assert_eq!((range.from, range.to), (1000, 1073));
        // The rest of the third chunk, a fourth chunk, the last chunk: copied from the last
        // chunk's line, with the counters.
        let b = [&[b'c'; 22][..], b"\r\n5\r\nddddd\r\n0\r\n\r\n"].concat();
        assert_eq!(
            sent(&mut f, &seg(1049, TcpFlags::ACK, &b)),
            Some((1083, b"0\r\n\r\n".as_slice(), marked(4, 61)))
        );
        assert_eq!(f.skipped_bytes, 49 + 34);
        // A size line cut by the segment's end: copied from the line.
        f.apply(chunked(2000, 2010));
        let c = [&[b'e'; 8][..], b"\r\n1f"].concat();
        assert_eq!(
            sent(&mut f, &seg(2000, TcpFlags::ACK, &c)),
            Some((2010, b"1f".as_slice(), marked(0, 0)))
        );
        // Five lines: four followed, copied from the fifth.
        f.apply(chunked(3000, 3000));
        let d = b"1\r\na\r\n".repeat(5);
        assert_eq!(
            sent(&mut f, &seg(3000, TcpFlags::ACK, &d)),
            Some((3024, b"1\r\na\r\n".as_slice(), marked(4, 4)))
        );
        // Ending where the chunk it followed ends: the mark, with the counters.
        f.apply(chunked(4000, 4000));
        assert_eq!(
            sent(&mut f, &seg(4000, TcpFlags::ACK, b"3\r\nabc\r\n")),
            Some((4008, b"".as_slice(), marked(1, 3)))
        );
        // Inside the range, not reaching its end, moving nothing: nothing sent.
        f.apply(chunked(8000, 8100));
        assert_eq!(sent(&mut f, &seg(8000, TcpFlags::ACK, &[b'f'; 50])), None);
        f.apply(chunked(4000, 4008));
        // Past the range's end (the capture passed it before the range was written): whole.
        assert_eq!(
            sent(&mut f, &seg(4010, TcpFlags::ACK, b"3\r\nabc\r\n")),
            Some((4010, b"3\r\nabc\r\n".as_slice(), None))
        );
        assert_eq!(f.skipped_bytes, 83 + 10 + 24 + 8 + 50);
        // A line with a chunk extension is not followed.
        f.apply(chunked(7000, 7000));
        assert_eq!(
            sent(&mut f, &seg(7000, TcpFlags::ACK, b"3;x\r\nabc\r\n")),
            Some((7000, b"3;x\r\nabc\r\n".as_slice(), marked(0, 0)))
        );
        // A plain range is not followed past its end.
        f.apply(SkipCommand::Skip {
            connection: key(),
            range: SkipRange {
                direction: Direction::Response,
                from: 5000,
                to: 5000,
                chunked: false,
            },
        });
        assert_eq!(
            sent(&mut f, &seg(5000, TcpFlags::ACK, b"3\r\nabc\r\n")),
            Some((5000, b"3\r\nabc\r\n".as_slice(), None))
        );
    }
}
