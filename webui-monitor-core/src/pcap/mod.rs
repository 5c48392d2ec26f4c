//! Capture files for `replay`: classic pcap (µs and ns, either byte order) and pcapng, read by
//! hand, and dissected into [`Segment`](crate::segment::Segment)s of the monitored ports.
//!
//! [`CaptureReader`] streams any [`std::io::Read`] one packet at a time through a reusable
//! buffer, so a capture of many gigabytes replays in bounded memory; [`Dissector`] strips
//! Ethernet (with 802.1Q/802.1ad tags), Linux cooked SLL/SLL2, raw IP or BSD loopback headers,
//! IPv4/IPv6 and TCP through checked views (`wire`), with the layouts, walk limits and reading
//! order the kernel parser uses (`webui_monitor_common::wire`). Malformed input is an error or a
//! counted skip, never a panic.
mod classic;
mod dissect;
mod pcapng;
mod wire;

use std::io::Read;

use serde::{Deserialize, Serialize};

use crate::segment::Timestamp;

pub use dissect::{Dissector, SkipReason};

/// A link-layer header type (`LINKTYPE_*` of the tcpdump.org registry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback, address family in host byte order.
    pub const NULL: LinkType = LinkType(0);
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP as some libpcap builds write `DLT_RAW` (12) …
    pub const RAW_DLT12: LinkType = LinkType(12);
    /// … and OpenBSD's `DLT_RAW` (14).
    pub const RAW_DLT14: LinkType = LinkType(14);
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback, address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    pub const LINUX_SLL: LinkType = LinkType(113);
    pub const IPV4: LinkType = LinkType(228);
    pub const IPV6: LinkType = LinkType(229);
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// Bounds of the capture reader.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PcapLimits {
    /// Largest packet record / pcapng block accepted; a larger one ends the replay with
    /// [`PcapError::TooLarge`]. Default 16 MiB (lo captures have 64 KiB frames; 256 KiB snaplen).
    pub max_record_bytes: usize,
    /// Interfaces per pcapng section. Default 1,024.
    pub max_interfaces: usize,
}

impl Default for PcapLimits {
    fn default() -> Self {
        Self {
            max_record_bytes: 16 << 20,
            max_interfaces: 1024,
        }
    }
}

/// Why a capture file cannot be read (further).
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("reading the capture failed")]
    Io(#[from] std::io::Error),
    #[error("not a pcap or pcapng file (magic {0:#010x})")]
    BadMagic(u32),
    #[error("the capture ends inside a {what} at byte {offset}")]
    Truncated { what: &'static str, offset: u64 },
    #[error("{what} of {len} bytes at byte {offset} exceeds the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        len: u64,
        limit: usize,
        offset: u64,
    },
    #[error("malformed {what} at byte {offset}")]
    Malformed { what: &'static str, offset: u64 },
    #[error("packet at byte {offset} refers to undeclared interface {interface}")]
    UnknownInterface { interface: u32, offset: u64 },
    #[error("more than {limit} interfaces in a pcapng section")]
    TooManyInterfaces { limit: usize },
}

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    pub link_type: LinkType,
    pub timestamp: Timestamp,
    /// The captured bytes (at most the snapshot length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub original_len: u32,
}

/// Byte order of a file or pcapng section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let a: [u8; 2] = b.get(at..at + 2)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(a),
            Endian::Big => u16::from_be_bytes(a),
        })
    }
    fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let a: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(a),
            Endian::Big => u32::from_be_bytes(a),
        })
    }
    fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let a: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(a),
            Endian::Big => u64::from_be_bytes(a),
        })
    }
}

/// A reader that knows how far it got and tells a clean end of file from a truncated record.
struct Source<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> Source<R> {
    /// Fills `buf` entirely. `Ok(false)`: the file ended cleanly before its first byte.
    fn fill(&mut self, buf: &mut [u8], what: &'static str) -> Result<bool, PcapError> {
        let start = self.offset;
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(PcapError::Truncated {
                        what,
                        offset: start,
                    });
                }
                Ok(n) => {
                    got += n;
                    self.offset += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(true)
    }

    /// Like [`Source::fill`], but the end of file is an error too.
    fn fill_all(&mut self, buf: &mut [u8], what: &'static str) -> Result<(), PcapError> {
        let offset = self.offset;
        if buf.is_empty() || self.fill(buf, what)? {
            Ok(())
        } else {
            Err(PcapError::Truncated { what, offset })
        }
    }
}

enum Format {
    Classic(classic::FileHeader),
    Pcapng(pcapng::Section),
}

/// Streams the packets of a pcap or pcapng file.
pub struct CaptureReader<R> {
    src: Source<R>,
    format: Format,
    limits: PcapLimits,
    buf: Vec<u8>,
    packets: u64,
}

impl<R: Read> CaptureReader<R> {
    /// Reads the file header and detects the format.
    pub fn new(inner: R, limits: PcapLimits) -> Result<Self, PcapError> {
        let mut src = Source { inner, offset: 0 };
        let mut magic = [0u8; 4];
        src.fill_all(&mut magic, "file header")?;
        let format = if magic == pcapng::SHB_TYPE {
            Format::Pcapng(pcapng::Section::read_first(&mut src, &limits)?)
        } else {
            Format::Classic(classic::FileHeader::read(&mut src, magic)?)
        };
        Ok(Self {
            src,
            format,
            limits,
            buf: Vec::new(),
            packets: 0,
        })
    }

    /// The next packet, `None` at the end of the file.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, PcapError> {
        let packet = match &mut self.format {
            Format::Classic(h) => h.next(&mut self.src, &mut self.buf, &self.limits)?,
            Format::Pcapng(s) => s.next(&mut self.src, &mut self.buf, &self.limits)?,
        };
        if packet.is_some() {
            self.packets += 1;
        }
        Ok(packet)
    }

    /// Bytes consumed so far (for progress reporting).
    pub fn bytes_read(&self) -> u64 {
        self.src.offset
    }

    /// Packets returned so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// `"pcap"` or `"pcapng"`.
    pub fn format_name(&self) -> &'static str {
        match self.format {
            Format::Classic(_) => "pcap",
            Format::Pcapng(_) => "pcapng",
        }
    }
}

/// Resizes `buf` to `len` bytes after checking the limit.
fn sized<'b>(
    buf: &'b mut Vec<u8>,
    len: u64,
    what: &'static str,
    limits: &PcapLimits,
    offset: u64,
) -> Result<&'b mut [u8], PcapError> {
    if len > limits.max_record_bytes as u64 {
        return Err(PcapError::TooLarge {
            what,
            len,
            limit: limits.max_record_bytes,
            offset,
        });
    }
    let len = len as usize;
    // Grow only: the buffer keeps the size of the largest record so far, no memset per packet.
    if buf.len() < len {
        buf.resize(len, 0);
    }
    Ok(&mut buf[..len])
}

#[cfg(test)]
mod tests;
