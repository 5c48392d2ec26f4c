//! Ring buffer records → [`Segment`]s: a pure function over bytes, with checked accessors.
//!
//! The layout is `webui_monitor_common::ChunkHeader` followed by the payload bytes; the kernel
//! writes it in host byte order.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use webui_monitor_common::{
    CHUNK_AFTER_LOSS, CHUNK_AFTER_SKIP, CHUNK_DATA_SIZE, CHUNK_LAST, CHUNK_TRUNCATED, ChunkHeader,
    DIRECTION_REQUEST, DIRECTION_RESPONSE, FAMILY_IPV4, FAMILY_IPV6,
};

use super::clock::BootClock;
use webui_monitor_core::segment::{CaptureSkip, ConnectionKey, Direction, Segment, TcpFlags};

/// Size of a record header in bytes.
pub const HEADER_LEN: usize = size_of::<ChunkHeader>();

mod field {
    use std::ops::Range;
    pub const TIMESTAMP: Range<usize> = 0..8;
    pub const CLIENT_ADDR: Range<usize> = 8..24;
    pub const SERVER_ADDR: Range<usize> = 24..40;
    pub const CLIENT_PORT: Range<usize> = 40..42;
    pub const SERVER_PORT: Range<usize> = 42..44;
    pub const FAMILY: usize = 44;
    pub const SEQ: Range<usize> = 48..52;
    pub const LEN: Range<usize> = 52..54;
    pub const DIRECTION: usize = 54;
    pub const TCP_FLAGS: usize = 55;
    pub const CHUNK_FLAGS: usize = 56;
    pub const SKIP_CHUNKS: Range<usize> = 58..60;
    pub const SKIP_DATA: Range<usize> = 60..64;
}

/// Why a ring record could not be decoded. The kernel side never produces these; they guard
/// against a mismatched object (or a bug) turning into a panic or garbage segments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {0} bytes is shorter than its {HEADER_LEN}-byte header")]
    Short(usize),
    #[error("record claims {claimed} payload bytes, has room for {available}")]
    Length { claimed: usize, available: usize },
    #[error("unknown address family {0}")]
    Family(u8),
    #[error("unknown direction {0}")]
    Direction(u8),
}

/// One decoded chunk record, still on the kernel clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// CLOCK_BOOTTIME nanoseconds when the kernel saw the packet.
    pub boot_ns: u64,
    pub key: ConnectionKey,
    pub direction: Direction,
    pub seq: u32,
    pub flags: TcpFlags,
    pub payload: &'a [u8],
    /// Last chunk of its TCP segment.
    pub last_chunk: bool,
    /// Payload after this chunk was cut by the kernel (and counted as lost).
    pub truncated: bool,
    /// The kernel dropped bytes of this direction since the connection's previous record.
    pub after_loss: bool,
    /// The record starts where a chunked skip span ended, with the span's counters
    /// (`CHUNK_AFTER_SKIP`).
    pub after_skip: Option<CaptureSkip>,
}

impl<'a> Record<'a> {
    /// Decodes one ring record.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        if bytes.len() < HEADER_LEN {
            return Err(DecodeError::Short(bytes.len()));
        }
        let len = usize::from(u16::from_ne_bytes(array(bytes, field::LEN)));
        let available = (bytes.len() - HEADER_LEN).min(CHUNK_DATA_SIZE);
        if len > available {
            return Err(DecodeError::Length {
                claimed: len,
                available,
            });
        }
        let family = bytes[field::FAMILY];
        let (client, server) = match family {
            FAMILY_IPV4 => {
                let c: [u8; 4] = array(
                    bytes,
                    field::CLIENT_ADDR.start..field::CLIENT_ADDR.start + 4,
                );
                let s: [u8; 4] = array(
                    bytes,
                    field::SERVER_ADDR.start..field::SERVER_ADDR.start + 4,
                );
                (IpAddr::V4(Ipv4Addr::from(c)), IpAddr::V4(Ipv4Addr::from(s)))
            }
            FAMILY_IPV6 => {
                let c: [u8; 16] = array(bytes, field::CLIENT_ADDR);
                let s: [u8; 16] = array(bytes, field::SERVER_ADDR);
                (IpAddr::V6(Ipv6Addr::from(c)), IpAddr::V6(Ipv6Addr::from(s)))
            }
            other => return Err(DecodeError::Family(other)),
        };
        let direction = match bytes[field::DIRECTION] {
            DIRECTION_REQUEST => Direction::Request,
            DIRECTION_RESPONSE => Direction::Response,
            other => return Err(DecodeError::Direction(other)),
        };
        let client_port = u16::from_ne_bytes(array(bytes, field::CLIENT_PORT));
        let server_port = u16::from_ne_bytes(array(bytes, field::SERVER_PORT));
        let chunk_flags = bytes[field::CHUNK_FLAGS];
        Ok(Record {
            boot_ns: u64::from_ne_bytes(array(bytes, field::TIMESTAMP)),
            key: ConnectionKey {
                client: SocketAddr::new(client, client_port),
                server: SocketAddr::new(server, server_port),
            },
            direction,
            seq: u32::from_ne_bytes(array(bytes, field::SEQ)),
            flags: TcpFlags(bytes[field::TCP_FLAGS]),
            payload: &bytes[HEADER_LEN..HEADER_LEN + len],
            last_chunk: chunk_flags & CHUNK_LAST != 0,
            truncated: chunk_flags & CHUNK_TRUNCATED != 0,
            after_loss: chunk_flags & CHUNK_AFTER_LOSS != 0,
            after_skip: (chunk_flags & CHUNK_AFTER_SKIP != 0).then(|| CaptureSkip {
                chunks: u16::from_ne_bytes(array(bytes, field::SKIP_CHUNKS)),
                data: u32::from_ne_bytes(array(bytes, field::SKIP_DATA)),
            }),
        })
    }

    /// The pipeline's view: the same chunk on the wall clock.
    pub fn segment(&self, clock: &BootClock) -> Segment<'a> {
        Segment {
            key: self.key,
            direction: self.direction,
            seq: self.seq,
            flags: self.flags,
            payload: self.payload,
            timestamp: clock.to_epoch(self.boot_ns),
            after_capture_loss: self.after_loss,
            capture_skip: self.after_skip,
        }
    }
}

/// Copies a fixed-size field; `range` is one of the constant ranges above, inside the header
/// whose length `Record::decode` checked first.
fn array<const N: usize>(bytes: &[u8], range: std::ops::Range<usize>) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&bytes[range]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use webui_monitor_core::segment::Timestamp;

    /// An IPv4 request chunk: 10.0.0.1:40000 → 10.0.0.2:8080, seq 1000, ACK|PSH, last chunk,
    /// 5 payload bytes "hello", timestamp 7 s after boot.
    #[rustfmt::skip]
    const IPV4_RECORD: [u8; 69] = [
        0x00, 0x86, 0x3b, 0xa1, 0x01, 0x00, 0x00, 0x00, // 7_000_000_000 ns
        10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // client
        10, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // server
        0x40, 0x9c, // 40000
        0x90, 0x1f, // 8080
        4, 0, 0, 0, // family, pad
        0xe8, 0x03, 0x00, 0x00, // seq 1000
        5, 0, // len
        0, // request
        0x18, // ACK|PSH
        CHUNK_LAST,
        0, 0, 0, 0, 0, 0, 0,
        b'h', b'e', b'l', b'l', b'o',
    ];

    /// An IPv6 response chunk: [::1]:8080 → [::1]:51000, FIN, no payload, not last (synthetic).
    #[rustfmt::skip]
    const IPV6_RECORD: [u8; 64] = [
        1, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // client ::1
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, // server ::2
        0x38, 0xc7, // 51000
        0x90, 0x1f, // 8080
        6, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, // seq u32::MAX
        0, 0,
        1, // response
        0x11, // FIN|ACK
        CHUNK_LAST | CHUNK_TRUNCATED,
        0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn decodes_ipv4_request_chunk() {
        let record = Record::decode(&IPV4_RECORD).unwrap();
        assert_eq!(
            record,
            Record {
                boot_ns: 7_000_000_000,
                key: ConnectionKey {
                    client: "10.0.0.1:40000".parse().unwrap(),
                    server: "10.0.0.2:8080".parse().unwrap(),
                },
                direction: Direction::Request,
                seq: 1000,
                flags: TcpFlags(0x18),
                payload: b"hello",
                last_chunk: true,
                truncated: false,
                after_loss: false,
                after_skip: None,
            }
        );
        let clock = BootClock::from_offset(1_700_000_000_000_000_000);
        let segment = record.segment(&clock);
        assert_eq!(segment.timestamp, Timestamp(1_700_000_007_000_000_000));
        assert_eq!(segment.payload, b"hello");
        assert_eq!(segment.seq, 1000);
    }

    #[test]
    fn decodes_ipv6_response_chunk() {
        let record = Record::decode(&IPV6_RECORD).unwrap();
        assert_eq!(record.key.client, "[::1]:51000".parse().unwrap());
        assert_eq!(record.key.server, "[::2]:8080".parse().unwrap());
        assert_eq!(record.direction, Direction::Response);
        assert_eq!(record.seq, u32::MAX);
        assert!(record.flags.fin() && record.flags.ack());
        assert!(record.payload.is_empty());
        assert!(record.last_chunk && record.truncated && !record.after_loss);
    }

    #[test]
    fn a_record_after_a_loss_says_so_to_the_pipeline() {
        let mut bytes = IPV4_RECORD;
        bytes[field::CHUNK_FLAGS] |= CHUNK_AFTER_LOSS;
        let record = Record::decode(&bytes).unwrap();
        assert!(record.after_loss && record.last_chunk);
        let clock = BootClock::from_offset(0);
        assert!(record.segment(&clock).after_capture_loss);
        let plain = Record::decode(&IPV4_RECORD).unwrap();
        assert!(!plain.segment(&clock).after_capture_loss);
    }

    #[test]
    fn a_record_after_a_chunked_skip_carries_the_spans_counters() {
        let mut bytes = IPV4_RECORD;
        bytes[field::CHUNK_FLAGS] |= CHUNK_AFTER_SKIP;
        bytes[field::SKIP_CHUNKS].copy_from_slice(&3u16.to_ne_bytes());
        bytes[field::SKIP_DATA].copy_from_slice(&70_000u32.to_ne_bytes());
        let record = Record::decode(&bytes).unwrap();
        let clock = BootClock::from_offset(0);
        assert_eq!(
            record.segment(&clock).capture_skip,
            Some(CaptureSkip {
                chunks: 3,
                data: 70_000
            })
        );
        let plain = Record::decode(&IPV4_RECORD).unwrap();
        assert_eq!(plain.segment(&clock).capture_skip, None);
    }

    #[test]
    fn a_full_size_record_exposes_only_len_bytes() {
        let mut full = vec![0xaa; 2048];
        full[..IPV4_RECORD.len()].copy_from_slice(&IPV4_RECORD);
        assert_eq!(Record::decode(&full).unwrap().payload, b"hello");
    }

    #[test]
    fn rejects_short_and_inconsistent_records() {
        assert_eq!(
            Record::decode(&IPV4_RECORD[..63]),
            Err(DecodeError::Short(63))
        );
        assert_eq!(
            Record::decode(&IPV4_RECORD[..68]),
            Err(DecodeError::Length {
                claimed: 5,
                available: 4
            })
        );
        let mut bad = IPV4_RECORD;
        bad[field::FAMILY] = 5;
        assert_eq!(Record::decode(&bad), Err(DecodeError::Family(5)));
        let mut bad = IPV4_RECORD;
        bad[field::DIRECTION] = 2;
        assert_eq!(Record::decode(&bad), Err(DecodeError::Direction(2)));
    }

    #[test]
    fn field_offsets_match_the_shared_layout() {
        let header = std::mem::offset_of!(ChunkHeader, key);
        assert_eq!(field::CLIENT_ADDR.start, header);
        assert_eq!(field::SEQ.start, std::mem::offset_of!(ChunkHeader, seq));
        assert_eq!(field::LEN.start, std::mem::offset_of!(ChunkHeader, len));
        assert_eq!(
            field::DIRECTION,
            std::mem::offset_of!(ChunkHeader, direction)
        );
        assert_eq!(
            field::TCP_FLAGS,
            std::mem::offset_of!(ChunkHeader, tcp_flags)
        );
        assert_eq!(
            field::CHUNK_FLAGS,
            std::mem::offset_of!(ChunkHeader, chunk_flags)
        );
        assert_eq!(field::FAMILY, header + 36);
    }
}
