//! pcapng: a sequence of sections, each a Section Header Block (which fixes the byte order)
//! followed by Interface Description Blocks and packet blocks (Enhanced, Simple, and the
//! obsolete Packet Block). Other block types are skipped.
use std::io::Read;

use crate::segment::Timestamp;

use super::{Endian, LinkType, Packet, PcapError, PcapLimits, Source, sized};

/// The Section Header Block type; a palindrome, so readable before the byte order is known.
pub(super) const SHB_TYPE: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const BYTE_ORDER_MAGIC: u32 = 0x1a2b_3c4d;

const IDB: u32 = 1;
const OBSOLETE_PACKET: u32 = 2;
const SIMPLE_PACKET: u32 = 3;
const ENHANCED_PACKET: u32 = 6;

const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// Timestamp units of an interface (`if_tsresol`): 10^-n or 2^-n seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Resolution {
    Pow10(u8),
    Pow2(u8),
}

impl Resolution {
    fn from_option(v: u8) -> Self {
        if v & 0x80 == 0 {
            Resolution::Pow10(v)
        } else {
            Resolution::Pow2(v & 0x7f)
        }
    }

    fn to_nanos(self, ticks: u64) -> u64 {
        match self {
            Resolution::Pow10(n) if n <= 9 => ticks.saturating_mul(10u64.pow(u32::from(9 - n))),
            Resolution::Pow10(n) => 10u64
                .checked_pow(u32::from(n - 9))
                .map_or(0, |div| ticks / div),
            Resolution::Pow2(n) => {
                let nanos = (u128::from(ticks) * 1_000_000_000) >> n.min(127);
                u64::try_from(nanos).unwrap_or(u64::MAX)
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: LinkType,
    snaplen: u32,
    resolution: Resolution,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_secs: i64,
}

impl Interface {
    fn timestamp(&self, high: u32, low: u32) -> Timestamp {
        let ticks = (u64::from(high) << 32) | u64::from(low);
        let nanos = self.resolution.to_nanos(ticks);
        let shift = self.offset_secs.saturating_mul(1_000_000_000);
        Timestamp::from_nanos(nanos.saturating_add_signed(shift))
    }
}

/// The state of the current section.
#[derive(Debug)]
pub(super) struct Section {
    endian: Endian,
    interfaces: Vec<Interface>,
    /// Simple Packet Blocks carry no timestamp; they take the previous packet's.
    last_ts: Timestamp,
}

/// Where a packet block's data lies in the block buffer.
struct Found {
    interface: usize,
    ts: Option<Timestamp>,
    start: usize,
    len: usize,
    original_len: u32,
}

impl Section {
    /// Reads the first Section Header Block, whose type the caller already consumed.
    pub(super) fn read_first<R: Read>(
        src: &mut Source<R>,
        limits: &PcapLimits,
    ) -> Result<Self, PcapError> {
        let mut len = [0u8; 4];
        src.fill_all(&mut len, "section header block")?;
        let mut scratch = Vec::new();
        Self::read_shb(src, len, 0, &mut scratch, limits)
    }

    /// Reads a Section Header Block after its type and total-length fields.
    fn read_shb<R: Read>(
        src: &mut Source<R>,
        total_len: [u8; 4],
        offset: u64,
        buf: &mut Vec<u8>,
        limits: &PcapLimits,
    ) -> Result<Self, PcapError> {
        let mut bom = [0u8; 4];
        src.fill_all(&mut bom, "section header block")?;
        let endian = if u32::from_le_bytes(bom) == BYTE_ORDER_MAGIC {
            Endian::Little
        } else if u32::from_be_bytes(bom) == BYTE_ORDER_MAGIC {
            Endian::Big
        } else {
            return Err(PcapError::Malformed {
                what: "section header block byte-order magic",
                offset,
            });
        };
        let total = endian.u32(&total_len, 0).unwrap_or_default();
        // Type, length, magic, version, section length, trailing length: 28 bytes at least.
        if total < 28 || !total.is_multiple_of(4) {
            return Err(PcapError::Malformed {
                what: "section header block length",
                offset,
            });
        }
        let rest = sized(
            buf,
            u64::from(total - 12),
            "section header block",
            limits,
            offset,
        )?;
        src.fill_all(rest, "section header block")?;
        Ok(Self {
            endian,
            interfaces: Vec::new(),
            last_ts: Timestamp::default(),
        })
    }

    pub(super) fn next<'b, R: Read>(
        &mut self,
        src: &mut Source<R>,
        buf: &'b mut Vec<u8>,
        limits: &PcapLimits,
    ) -> Result<Option<Packet<'b>>, PcapError> {
        loop {
            let offset = src.offset;
            let mut head = [0u8; 8];
            if !src.fill(&mut head, "block header")? {
                return Ok(None);
            }
            let raw_type = [head[0], head[1], head[2], head[3]];
            let raw_len = [head[4], head[5], head[6], head[7]];
            if raw_type == SHB_TYPE {
                *self = Self::read_shb(src, raw_len, offset, buf, limits)?;
                continue;
            }
            let e = self.endian;
            let block_type = e.u32(&head, 0).unwrap_or_default();
            let total = e.u32(&head, 4).unwrap_or_default();
            if total < 12 || !total.is_multiple_of(4) {
                return Err(PcapError::Malformed {
                    what: "block length",
                    offset,
                });
            }
            let body = sized(buf, u64::from(total - 8), "block", limits, offset)?;
            src.fill_all(body, "block")?;
            // The trailing copy of the length is not checked: writers agree on it, and a
            // mismatch tells nothing the leading length did not.
            let body_len = body.len() - 4;
            let Some(found) = self.interpret(block_type, &body[..body_len], offset, limits)? else {
                continue;
            };
            let Some(iface) = self.interfaces.get(found.interface) else {
                return Err(PcapError::UnknownInterface {
                    interface: found.interface as u32,
                    offset,
                });
            };
            let ts = found.ts.unwrap_or(self.last_ts);
            self.last_ts = ts;
            let link_type = iface.link_type;
            return Ok(Some(Packet {
                link_type,
                timestamp: ts,
                data: &buf[found.start..found.start + found.len],
                original_len: found.original_len,
            }));
        }
    }

    /// Interprets one block body; `Some` for a packet block.
    fn interpret(
        &mut self,
        block_type: u32,
        body: &[u8],
        offset: u64,
        limits: &PcapLimits,
    ) -> Result<Option<Found>, PcapError> {
        let e = self.endian;
        let malformed = |what| PcapError::Malformed { what, offset };
        match block_type {
            IDB => {
                let link = e
                    .u16(body, 0)
                    .ok_or(malformed("interface description block"))?;
                let snaplen = e
                    .u32(body, 4)
                    .ok_or(malformed("interface description block"))?;
                let mut iface = Interface {
                    link_type: LinkType(u32::from(link)),
                    snaplen,
                    resolution: Resolution::Pow10(6),
                    offset_secs: 0,
                };
                let mut at = 8;
                while let (Some(code), Some(len)) = (e.u16(body, at), e.u16(body, at + 2)) {
                    if code == OPT_END {
                        break;
                    }
                    let len = usize::from(len);
                    let value = body
                        .get(at + 4..at + 4 + len)
                        .ok_or(malformed("interface option"))?;
                    match code {
                        OPT_IF_TSRESOL if !value.is_empty() => {
                            iface.resolution = Resolution::from_option(value[0]);
                        }
                        OPT_IF_TSOFFSET if value.len() >= 8 => {
                            iface.offset_secs = e.u64(value, 0).unwrap_or_default() as i64;
                        }
                        _ => {}
                    }
                    at += 4 + len.next_multiple_of(4);
                }
                if self.interfaces.len() >= limits.max_interfaces {
                    return Err(PcapError::TooManyInterfaces {
                        limit: limits.max_interfaces,
                    });
                }
                self.interfaces.push(iface);
                Ok(None)
            }
            ENHANCED_PACKET | OBSOLETE_PACKET => {
                let what = "packet block";
                let interface = if block_type == ENHANCED_PACKET {
                    e.u32(body, 0).ok_or(malformed(what))? as usize
                } else {
                    usize::from(e.u16(body, 0).ok_or(malformed(what))?)
                };
                let high = e.u32(body, 4).ok_or(malformed(what))?;
                let low = e.u32(body, 8).ok_or(malformed(what))?;
                let caplen = e.u32(body, 12).ok_or(malformed(what))? as usize;
                let original_len = e.u32(body, 16).ok_or(malformed(what))?;
                if body.len() - 20 < caplen {
                    return Err(malformed("packet block captured length"));
                }
                let ts = self
                    .interfaces
                    .get(interface)
                    .map(|i| i.timestamp(high, low));
                Ok(Some(Found {
                    interface,
                    ts,
                    start: 20,
                    len: caplen,
                    original_len,
                }))
            }
            SIMPLE_PACKET => {
                let original_len = e.u32(body, 0).ok_or(malformed("simple packet block"))?;
                let snaplen = self.interfaces.first().map_or(u32::MAX, |i| {
                    if i.snaplen == 0 { u32::MAX } else { i.snaplen }
                });
                let len = (body.len() - 4)
                    .min(original_len as usize)
                    .min(snaplen as usize);
                Ok(Some(Found {
                    interface: 0,
                    ts: None,
                    start: 4,
                    len,
                    original_len,
                }))
            }
            _ => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolutions() {
        assert_eq!(Resolution::Pow10(6).to_nanos(1_500_000), 1_500_000_000);
        assert_eq!(Resolution::Pow10(9).to_nanos(7), 7);
        assert_eq!(Resolution::Pow10(12).to_nanos(7_000), 7);
        assert_eq!(Resolution::Pow2(10).to_nanos(1024), 1_000_000_000);
        assert_eq!(Resolution::from_option(0x8a), Resolution::Pow2(10));
        assert_eq!(Resolution::Pow10(60).to_nanos(u64::MAX), 0);
        assert_eq!(Resolution::Pow10(0).to_nanos(u64::MAX), u64::MAX);
    }
}
