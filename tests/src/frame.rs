//! Crafted Ethernet frames (checksums left zero: the programs never look at them).

/// The client of the crafted frames' connections.
pub const CLIENT4: [u8; 4] = [10, 0, 0, 1];
/// The server of the crafted frames' connections.
pub const SERVER4: [u8; 4] = [10, 0, 0, 2];
pub const CLIENT6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const SERVER6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// 802.1ad (outer) tag protocol identifier.
pub const TPID_8021AD: u16 = 0x88a8;
/// 802.1Q tag protocol identifier.
pub const TPID_8021Q: u16 = 0x8100;

/// The IP layer of a frame.
#[derive(Debug, Clone)]
pub enum Ip {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        /// Raw IPv4 options (padded to a multiple of 4 by the builder).
        options: Vec<u8>,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
    },
}

/// A TCP segment.
#[derive(Debug, Clone, Default)]
pub struct Tcp {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub flags: u8,
    /// Raw TCP options (padded to a multiple of 4 by the builder).
    pub options: Vec<u8>,
    pub payload: Vec<u8>,
}

fn padded(options: &[u8]) -> Vec<u8> {
    let mut out = options.to_vec();
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
    out
}

/// The TCP header + payload bytes.
pub fn tcp_bytes(tcp: &Tcp) -> Vec<u8> {
    let options = padded(&tcp.options);
    let data_offset = (20 + options.len()) / 4;
    let mut out = Vec::new();
    out.extend_from_slice(&tcp.src_port.to_be_bytes());
    out.extend_from_slice(&tcp.dst_port.to_be_bytes());
    out.extend_from_slice(&tcp.seq.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // ack
    out.push((data_offset as u8) << 4);
    out.push(tcp.flags);
    out.extend_from_slice(&65535u16.to_be_bytes()); // window
    out.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    out.extend_from_slice(&options);
    out.extend_from_slice(&tcp.payload);
    out
}

/// A full Ethernet frame: MACs, `vlans` tags (TPID, TCI) outermost first, IP, TCP.
pub fn frame(vlans: &[(u16, u16)], ip: &Ip, tcp: &Tcp) -> Vec<u8> {
    let l4 = tcp_bytes(tcp);
    let mut out = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];
    for (tpid, tci) in vlans {
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&tci.to_be_bytes());
    }
    match ip {
        Ip::V4 { src, dst, options } => {
            let options = padded(options);
            let ihl = (20 + options.len()) / 4;
            let total = 20 + options.len() + l4.len();
            out.extend_from_slice(&0x0800u16.to_be_bytes());
            out.push(0x40 | ihl as u8);
            out.push(0);
            // Larger than an IPv4 length can say: BIG TCP, which sends a total length of 0
            // (`iph_set_totlen()` in include/net/ip.h).
            let total = u16::try_from(total).unwrap_or(0);
            out.extend_from_slice(&total.to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0]); // id, DF
            out.push(64);
            out.push(6);
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(src);
            out.extend_from_slice(dst);
            out.extend_from_slice(&options);
        }
        Ip::V6 { src, dst } => {
            out.extend_from_slice(&0x86ddu16.to_be_bytes());
            out.extend_from_slice(&[0x60, 0, 0, 0]);
            out.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            out.push(6);
            out.push(64);
            out.extend_from_slice(src);
            out.extend_from_slice(dst);
        }
    }
    out.extend_from_slice(&l4);
    out
}

/// `n` bytes of a recognisable pattern (position-dependent, so misordered chunks show).
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}
