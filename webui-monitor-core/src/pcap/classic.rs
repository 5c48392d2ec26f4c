//! Classic libpcap files: a 24-byte file header, then 16-byte record headers each followed by
//! the captured bytes. The magic number gives byte order and timestamp resolution.
use std::io::Read;

use crate::segment::Timestamp;

use super::{Endian, LinkType, Packet, PcapError, PcapLimits, Source, sized};

const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;

#[derive(Debug, Clone, Copy)]
pub(super) struct FileHeader {
    endian: Endian,
    nanos: bool,
    link_type: LinkType,
}

impl FileHeader {
    /// Reads the rest of the file header after its `magic`.
    pub(super) fn read<R: Read>(src: &mut Source<R>, magic: [u8; 4]) -> Result<Self, PcapError> {
        let le = u32::from_le_bytes(magic);
        let be = u32::from_be_bytes(magic);
        let (endian, nanos) = match (le, be) {
            (MAGIC_MICROS, _) => (Endian::Little, false),
            (MAGIC_NANOS, _) => (Endian::Little, true),
            (_, MAGIC_MICROS) => (Endian::Big, false),
            (_, MAGIC_NANOS) => (Endian::Big, true),
            _ => return Err(PcapError::BadMagic(be)),
        };
        let mut rest = [0u8; 20];
        src.fill_all(&mut rest, "file header")?;
        // version (4), thiszone (4), sigfigs (4), snaplen (4), link type (4). The link-type
        // field's upper 16 bits carry FCS information; the type is the lower 16.
        let network = endian.u32(&rest, 16).unwrap_or_default();
        Ok(Self {
            endian,
            nanos,
            link_type: LinkType(network & 0xffff),
        })
    }

    pub(super) fn next<'b, R: Read>(
        &self,
        src: &mut Source<R>,
        buf: &'b mut Vec<u8>,
        limits: &PcapLimits,
    ) -> Result<Option<Packet<'b>>, PcapError> {
        let offset = src.offset;
        let mut rec = [0u8; 16];
        if !src.fill(&mut rec, "packet record header")? {
            return Ok(None);
        }
        let e = self.endian;
        let secs = u64::from(e.u32(&rec, 0).unwrap_or_default());
        let frac = u64::from(e.u32(&rec, 4).unwrap_or_default());
        let caplen = e.u32(&rec, 8).unwrap_or_default();
        let original_len = e.u32(&rec, 12).unwrap_or_default();
        let frac_nanos = if self.nanos { frac } else { frac * 1_000 };
        let data = sized(buf, u64::from(caplen), "packet record", limits, offset)?;
        src.fill_all(data, "packet record")?;
        Ok(Some(Packet {
            link_type: self.link_type,
            timestamp: Timestamp::from_nanos(
                secs.saturating_mul(1_000_000_000)
                    .saturating_add(frac_nanos),
            ),
            data,
            original_len,
        }))
    }
}
