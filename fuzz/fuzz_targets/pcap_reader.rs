//! Any byte string as a capture file: the reader and the dissector must return errors or
//! skips, never panic, and the pipeline must accept whatever segments come out.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webui_monitor_core::{
    pcap::{CaptureReader, Dissector, PcapLimits},
    pipeline::Pipeline,
};

fuzz_target!(|data: &[u8]| {
    let limits = PcapLimits {
        max_record_bytes: 1 << 16,
        max_interfaces: 8,
    };
    let Ok(mut reader) = CaptureReader::new(data, limits) else {
        return;
    };
    // Port 0 is monitored too so that random frames reach the pipeline more often.
    let dissector = Dissector::new([8080, 0]);
    let mut pipeline = Pipeline::default();
    let mut events = Vec::new();
    let mut last = Default::default();
    while let Ok(Some(packet)) = reader.next_packet() {
        last = packet.timestamp;
        if let Ok(segment) = dissector.dissect(packet.link_type, packet.timestamp, packet.data) {
            pipeline.on_segment(&segment, &mut events);
        }
        events.clear();
    }
    pipeline.finish(last, &mut events);
});
