//! Payload userspace does not read: the spans it wrote into [`SKIP`](crate::SKIP), per
//! connection and direction (see `SkipSpan` for the rule). One map lookup per payload segment,
//! with the connection table's key.
use webui_monitor_common::{CaptureStats, TCP_FIN, TCP_RST, TCP_SYN};

use crate::{SKIP, parse::Segment};

/// What the capture sends of a segment with payload after [`apply`].
pub enum Skipped {
    /// The segment as (now) described: all of it, the part from the span's end, or no
    /// payload (a record that marks where the skipped bytes ended, or carries a flag).
    Send,
    /// Nothing: its payload lies inside a span and it marks nothing.
    Nothing,
}

/// Applies the span of `segment`'s connection and direction, if any: moves its sequence
/// number, payload offset and length past the bytes left out, and counts those bytes.
#[inline(always)]
pub fn apply(segment: &mut Segment, stats: &mut CaptureStats) -> Skipped {
    // SAFETY: the value is plain data, read at once; an update racing with the read can only
    // give a span userspace wrote at some point, which is as good as the other.
    let Some(spans) = (unsafe { SKIP.get(&segment.key) }) else {
        return Skipped::Send;
    };
    let span = &spans.spans[segment.direction as usize & 1];
    let (from, to) = (span.from, span.to);
    let len = segment.payload_len;
    let start = segment.seq;
    let end = start.wrapping_add(len);
    // Starts inside [from, to), wrap-around-safe.
    if (start.wrapping_sub(from) as i32) < 0 || (to.wrapping_sub(start) as i32) <= 0 {
        return Skipped::Send;
    }
    // Up to the span's end when the payload goes beyond it, else all of it.
    let crosses = (to.wrapping_sub(end) as i32) < 0;
    let cut = if crosses { to.wrapping_sub(start) } else { len };
    stats.skipped_bytes += cut as u64;
    segment.seq = start.wrapping_add(cut);
    segment.payload_offset += cut;
    segment.payload_len = len - cut;
    if crosses || segment.tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST) != 0 || end == to {
        Skipped::Send
    } else {
        Skipped::Nothing
    }
}
