//! The network interfaces of this namespace, and their comings and goings, from rtnetlink.
//!
//! [`dump`] lists the links now (`RTM_GETLINK` with `NLM_F_DUMP`); a [`LinkWatcher`] is a
//! socket subscribed to `RTNLGRP_LINK`, which the kernel tells of every link created, changed
//! (renamed, up, down) or deleted. Subscribe first, then dump: an interface created in between
//! shows up in both, and the follower treats both the same. When the kernel drops notifications
//! because the socket's buffer was full (`ENOBUFS`), [`LinkWatcher::events`] says so and the
//! follower re-dumps.
use std::{io, os::fd::AsRawFd};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::{Interest, unix::AsyncFd};

/// One interface: its index (stable while it exists) and its name (may change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
}

/// What the kernel said about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Created, or changed (its name may be new).
    Present(Link),
    /// Deleted, or moved to another network namespace.
    Gone(Link),
    /// Notifications were lost: the caller re-reads the whole list with [`dump`].
    Overrun,
}

const BUFFER: usize = 64 * 1024;

/// The links of the calling thread's network namespace.
pub fn dump() -> io::Result<Vec<Link>> {
    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut message = NetlinkMessage::from(RouteNetlinkMessage::GetLink(LinkMessage::default()));
    message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    message.header.sequence_number = 1;
    message.finalize();
    let mut request = vec![0; message.header.length as usize];
    message.serialize(&mut request);
    socket.send(&request, 0)?;
    let mut links = Vec::new();
    let mut buffer = vec![0; BUFFER];
    loop {
        let len = socket.recv(&mut &mut buffer[..], 0)?;
        let mut done = false;
        for payload in messages(&buffer[..len]) {
            let Ok(payload) = payload else {
                log::debug!("rtnetlink: an undecodable link message in the dump, skipped");
                continue;
            };
            match payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => {
                    links.extend(link_of(&link));
                }
                NetlinkPayload::Done(_) => done = true,
                NetlinkPayload::Error(error) => {
                    if let Some(code) = error.code {
                        return Err(io::Error::from_raw_os_error(-code.get()));
                    }
                }
                _ => {}
            }
        }
        if done || len == 0 {
            return Ok(links);
        }
    }
}

/// A socket the kernel tells of link changes.
pub struct LinkWatcher {
    socket: AsyncFd<SocketFd>,
    buffer: Vec<u8>,
}

/// The netlink socket, as something tokio can poll.
struct SocketFd(Socket);

impl AsRawFd for SocketFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl LinkWatcher {
    /// Subscribes to link notifications. Needs a tokio runtime.
    pub fn new() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.add_membership(libc::RTNLGRP_LINK)?;
        socket.set_non_blocking(true)?;
        // SAFETY: `SocketFd` owns the socket and never closes or swaps its fd while the
        // AsyncFd owns it.
        let socket =
            unsafe { AsyncFd::register_with_interest(SocketFd(socket), Interest::READABLE) }?;
        Ok(Self {
            socket,
            buffer: vec![0; BUFFER],
        })
    }

    /// Waits for notifications and returns those now queued (at least one).
    pub async fn events(&mut self) -> io::Result<Vec<LinkEvent>> {
        loop {
            let mut guard = self.socket.readable().await?;
            let mut events = Vec::new();
            loop {
                match guard.get_inner().0.recv(&mut &mut self.buffer[..], 0) {
                    Ok(len) => {
                        for payload in messages(&self.buffer[..len]) {
                            let Ok(payload) = payload else {
                                // What changed is unknown: re-read the whole list.
                                events.push(LinkEvent::Overrun);
                                continue;
                            };
                            match payload {
                                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                                    events.extend(link_of(&m).map(LinkEvent::Present));
                                }
                                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(m)) => {
                                    events.extend(link_of(&m).map(LinkEvent::Gone));
                                }
                                _ => {}
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        guard.clear_ready();
                        break;
                    }
                    // The kernel dropped notifications: what happened meanwhile is unknown.
                    Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                        events.push(LinkEvent::Overrun)
                    }
                    Err(e) => return Err(e),
                }
            }
            if !events.is_empty() {
                return Ok(events);
            }
        }
    }
}

/// The messages of one datagram (a datagram may carry several, each 4-byte aligned); `Err`
/// for one the library cannot decode. A broken header ends the datagram.
fn messages(mut bytes: &[u8]) -> Vec<Result<NetlinkPayload<RouteNetlinkMessage>, ()>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let Ok(header) = NetlinkBuffer::new_checked(bytes) else {
            out.push(Err(()));
            break;
        };
        let length = header.length() as usize;
        out.push(
            NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[..length])
                .map(|m| m.payload)
                .map_err(drop),
        );
        let aligned = length.next_multiple_of(4).min(bytes.len());
        if aligned == 0 {
            break;
        }
        bytes = &bytes[aligned..];
    }
    out
}

fn link_of(message: &LinkMessage) -> Option<Link> {
    let name = message.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })?;
    Some(Link {
        index: message.header.index,
        name,
    })
}
