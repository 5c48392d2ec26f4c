//! The sans-IO pipeline: [`Segment`]s in, [`PipelineEvent`]s out.
//!
//! CONTRACT STUB (lead): the `stream` helper implements it.
use crate::{
    http::Exchange,
    segment::{ConnectionKey, Segment, Timestamp},
    websocket::SocketEvent,
};

#[derive(Debug)]
pub enum PipelineEvent {
    Exchange(Box<Exchange>),
    Socket {
        connection: ConnectionKey,
        event: SocketEvent,
    },
}

#[derive(Debug, Default)]
pub struct Pipeline {}

impl Pipeline {
    pub fn on_segment(&mut self, _segment: &Segment<'_>, _out: &mut Vec<PipelineEvent>) {}
    /// Expire idle connections as of `now` (traffic time).
    pub fn on_tick(&mut self, _now: Timestamp, _out: &mut Vec<PipelineEvent>) {}
    /// End of input: close every connection, flushing what is pending.
    pub fn finish(&mut self, _now: Timestamp, _out: &mut Vec<PipelineEvent>) {}
}
