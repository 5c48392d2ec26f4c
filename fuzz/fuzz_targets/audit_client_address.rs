//! The audit trail's client address on any proxy headers: the answer is the peer or an address
//! written in a header, and only a trusted peer's headers are read.
#![no_main]
use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use webui_monitor_core::audit::{AddressSource, client_address};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (forwarded_for, real_ip) = text.split_once('\n').unwrap_or((&text, ""));
    let trusted: Vec<_> = ["10.213.0.0/16", "fd00::/8"]
        .iter()
        .map(|n| n.parse().expect("a network"))
        .collect();
    let peer = if choice & 1 == 0 {
        IpAddr::V4(Ipv4Addr::new(10, 213, 0, 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(198, 51, 100, 4))
    };
    let (address, source) = client_address(
        peer,
        (choice & 2 == 0).then_some(forwarded_for),
        (choice & 4 == 0).then_some(real_ip),
        &trusted,
    );
    match source {
        AddressSource::Peer => assert_eq!(address, peer),
        AddressSource::XForwardedFor | AddressSource::XRealIp => {
            assert!(trusted.iter().any(|n| n.contains(&peer)), "headers of an untrusted peer");
        }
    }
});
