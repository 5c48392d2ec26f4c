//! The classic TC egress hook, for kernels without tcx (before Linux 6.6).
//!
//! There the egress program is a `cls_bpf` filter under a `clsact` qdisc, attached over
//! netlink. Unlike a tcx link, neither dies with the process: the daemon adds the qdisc only
//! if the interface has none, removes exactly what it added when it detaches, and removes a
//! filter of its program left behind by a process that was killed before it could.
use std::{ffi::CStr, io};

use aya::programs::{
    TcAttachType,
    tc::{self, TcError},
};
use netlink_packet_core::{NLM_F_ACK, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    RouteNetlinkMessage,
    tc::{TcAttribute, TcHandle, TcMessage},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use webui_monitor_common::TC_PROGRAM;

/// A `clsact` qdisc on one interface, and whether this process added it.
#[derive(Debug)]
pub struct Clsact {
    if_index: u32,
    added: bool,
}

impl Clsact {
    /// Makes sure `interface` has a `clsact` qdisc, and removes filters of the egress
    /// program that an earlier run left behind.
    pub fn ensure(interface: &CStr) -> Result<Self, TcError> {
        let if_index = if_index(interface)?;
        let added = match tc::qdisc_add_clsact(interface) {
            Ok(()) => true,
            Err(TcError::NetlinkError(error)) if error.raw_os_error() == Some(libc::EEXIST) => {
                false
            }
            Err(error) => return Err(error),
        };
        if !added {
            match tc::qdisc_detach_program(interface, TcAttachType::Egress.into(), TC_PROGRAM) {
                Ok(()) => log::info!(
                    "removed a {TC_PROGRAM} filter left behind on {} by an earlier run",
                    interface.to_string_lossy()
                ),
                Err(TcError::IoError(error)) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        Ok(Self { if_index, added })
    }

    /// Whether this process added the qdisc (and [`Clsact::remove`] deletes it).
    pub fn added(&self) -> bool {
        self.added
    }

    /// Deletes the qdisc if this process added it (with any filter still under it).
    pub fn remove(self) -> io::Result<()> {
        if !self.added {
            return Ok(());
        }
        let mut message = TcMessage::with_index(self.if_index as i32);
        message.header.parent = TcHandle::CLSACT;
        message.header.handle = TcHandle::from(0xffff_0000);
        message
            .attributes
            .push(TcAttribute::Kind("clsact".to_owned()));
        request(RouteNetlinkMessage::DelQueueDiscipline(message))
    }
}

fn if_index(interface: &CStr) -> Result<u32, TcError> {
    // SAFETY: `interface` is a valid C string.
    let index = unsafe { libc::if_nametoindex(interface.as_ptr()) };
    if index == 0 {
        return Err(TcError::IoError(io::Error::last_os_error()));
    }
    Ok(index)
}

/// Sends one rtnetlink request and waits for its acknowledgement.
fn request(payload: RouteNetlinkMessage) -> io::Result<()> {
    let mut message = NetlinkMessage::from(payload);
    message.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    message.header.sequence_number = 1;
    message.finalize();
    let mut buffer = vec![0; message.header.length as usize];
    message.serialize(&mut buffer);

    let mut socket = Socket::new(NETLINK_ROUTE)?;
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    socket.send(&buffer, 0)?;
    let mut reply = vec![0; 64 * 1024];
    let len = socket.recv(&mut &mut reply[..], 0)?;
    let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&reply[..len])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    match reply.payload {
        NetlinkPayload::Error(error) => match error.code {
            None => Ok(()),
            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
        },
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected netlink reply {:?}", other.message_type()),
        )),
    }
}
