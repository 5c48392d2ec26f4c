use proptest::prelude::*;

use super::*;

/// Builds files in either byte order.
struct W {
    big: bool,
    out: Vec<u8>,
}

impl W {
    fn new(big: bool) -> Self {
        W {
            big,
            out: Vec::new(),
        }
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        let b = if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        self.out.extend_from_slice(&b);
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.out.extend_from_slice(b);
        self
    }
}

fn classic(big: bool, nanos: bool, link: u32, packets: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let mut w = W::new(big);
    w.u32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 })
        .u16(2)
        .u16(4)
        .u32(0)
        .u32(0)
        .u32(65535)
        .u32(link);
    for (s, frac, data) in packets {
        w.u32(*s)
            .u32(*frac)
            .u32(data.len() as u32)
            .u32(data.len() as u32 + 10)
            .bytes(data);
    }
    w.out
}

/// Link type, timestamp (ns), data, original length.
type PacketRow = (LinkType, u64, Vec<u8>, u32);

fn read_all(bytes: &[u8]) -> Result<Vec<PacketRow>, PcapError> {
    let mut r = CaptureReader::new(bytes, PcapLimits::default())?;
    let mut v = Vec::new();
    while let Some(p) = r.next_packet()? {
        v.push((
            p.link_type,
            p.timestamp.as_nanos(),
            p.data.to_vec(),
            p.original_len,
        ));
    }
    Ok(v)
}

#[test]
fn classic_all_magics() {
    for big in [false, true] {
        for nanos in [false, true] {
            let f = classic(big, nanos, 113, &[(10, 5, b"abc"), (11, 0, b"")]);
            let got = read_all(&f).expect("valid file");
            let frac = if nanos { 5 } else { 5_000 };
            assert_eq!(
                got,
                vec![
                    (
                        LinkType::LINUX_SLL,
                        10_000_000_000 + frac,
                        b"abc".to_vec(),
                        13
                    ),
                    (LinkType::LINUX_SLL, 11_000_000_000, vec![], 10),
                ],
                "big={big} nanos={nanos}"
            );
        }
    }
}

#[test]
fn classic_link_type_ignores_fcs_bits() {
    let f = classic(false, false, 0x1000_0001, &[(1, 0, b"x")]);
    assert_eq!(read_all(&f).expect("valid")[0].0, LinkType::ETHERNET);
}

fn block(w: &mut W, block_type: u32, body: &[u8]) {
    let padded = body.len().next_multiple_of(4);
    let total = 12 + padded as u32;
    w.u32(block_type).u32(total).bytes(body);
    w.bytes(&vec![0; padded - body.len()]);
    w.u32(total);
}

fn pcapng(big: bool) -> Vec<u8> {
    let mut w = W::new(big);
    // SHB: magic, version 1.0, section length -1.
    let mut shb = W::new(big);
    shb.u32(0x1a2b_3c4d)
        .u16(1)
        .u16(0)
        .u32(u32::MAX)
        .u32(u32::MAX);
    block(&mut w, 0x0a0d_0d0a, &shb.out);
    // IDB 0: Ethernet, default µs.
    let mut idb = W::new(big);
    idb.u16(1).u16(0).u32(0);
    block(&mut w, 1, &idb.out);
    // IDB 1: raw IP, ns resolution, +100 s offset, with an unknown option first.
    let mut idb = W::new(big);
    idb.u16(101).u16(0).u32(0);
    idb.u16(2).u16(3).bytes(b"lo\0\0"); // if_name, padded
    idb.u16(9).u16(1).bytes(&[9, 0, 0, 0]);
    idb.u16(14).u16(8);
    if big {
        idb.bytes(&100u64.to_be_bytes());
    } else {
        idb.bytes(&100u64.to_le_bytes());
    }
    idb.u16(0).u16(0);
    block(&mut w, 1, &idb.out);
    // EPB on interface 0: ts = 1 s + 2 µs.
    let mut epb = W::new(big);
    epb.u32(0)
        .u32(0)
        .u32(1_000_002)
        .u32(5)
        .u32(60)
        .bytes(b"hello");
    block(&mut w, 6, &epb.out);
    // A custom block: skipped.
    block(&mut w, 0x0000_0bad, b"skip");
    // EPB on interface 1: 2^32 + 7 ns.
    let mut epb = W::new(big);
    epb.u32(1).u32(1).u32(7).u32(2).u32(2).bytes(b"ip");
    block(&mut w, 6, &epb.out);
    // SPB: interface 0, previous timestamp.
    let mut spb = W::new(big);
    spb.u32(3).bytes(b"spb");
    block(&mut w, 3, &spb.out);
    w.out
}

#[test]
fn pcapng_both_byte_orders() {
    for big in [false, true] {
        let got = read_all(&pcapng(big)).expect("valid file");
        assert_eq!(
            got,
            vec![
                (LinkType::ETHERNET, 1_000_002_000, b"hello".to_vec(), 60),
                (
                    LinkType::RAW,
                    100_000_000_000 + (1u64 << 32) + 7,
                    b"ip".to_vec(),
                    2
                ),
                (
                    LinkType::ETHERNET,
                    100_000_000_000 + (1u64 << 32) + 7,
                    b"spb".to_vec(),
                    3
                ),
            ],
            "big={big}"
        );
    }
}

#[test]
fn pcapng_second_section_switches_byte_order() {
    let mut f = pcapng(false);
    f.extend_from_slice(&pcapng(true));
    let got = read_all(&f).expect("valid file");
    assert_eq!(got.len(), 6);
    assert_eq!(got[3].2, b"hello");
}

#[test]
fn errors_are_reported_not_panicked() {
    assert!(matches!(read_all(b"nope"), Err(PcapError::BadMagic(_))));
    assert!(matches!(read_all(b"ab"), Err(PcapError::Truncated { .. })));
    let f = classic(false, false, 1, &[(1, 0, b"abcdef")]);
    assert!(matches!(
        read_all(&f[..f.len() - 2]),
        Err(PcapError::Truncated {
            what: "packet record",
            offset: 40
        })
    ));
    // Packet on an interface never declared.
    let mut w = W::new(false);
    let mut shb = W::new(false);
    shb.u32(0x1a2b_3c4d).u16(1).u16(0).u32(0).u32(0);
    block(&mut w, 0x0a0d_0d0a, &shb.out);
    let mut epb = W::new(false);
    epb.u32(3).u32(0).u32(0).u32(0).u32(0);
    block(&mut w, 6, &epb.out);
    assert!(matches!(
        read_all(&w.out),
        Err(PcapError::UnknownInterface { interface: 3, .. })
    ));
    // Record larger than the limit.
    let big = classic(false, false, 1, &[(1, 0, &[0; 100])]);
    let mut r = CaptureReader::new(
        &big[..],
        PcapLimits {
            max_record_bytes: 99,
            ..PcapLimits::default()
        },
    )
    .expect("header");
    assert!(matches!(
        r.next_packet(),
        Err(PcapError::TooLarge { len: 100, .. })
    ));
}

proptest! {
    /// Random bytes, and every truncation and corruption of valid files, never panic.
    #[test]
    fn random_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = read_all(&bytes);
        let mut f = pcapng(false);
        f.extend_from_slice(&bytes);
        let _ = read_all(&f);
    }

    #[test]
    fn truncation_and_corruption_never_panic(cut in 0usize..200, flip in 0usize..200, v in any::<u8>()) {
        for mut f in [pcapng(false), pcapng(true), classic(true, true, 1, &[(1, 2, b"abc"), (3, 4, b"defg")])] {
            if flip < f.len() { f[flip] = v; }
            let cut = cut.min(f.len());
            let _ = read_all(&f[..cut]);
            let _ = read_all(&f);
        }
    }
}
