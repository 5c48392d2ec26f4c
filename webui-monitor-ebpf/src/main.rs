//! webui-monitor's kernel programs: every TCP payload byte of the monitored ports goes to
//! userspace through a ring buffer, or is counted as lost.
//!
//! # Where the programs attach, and why
//!
//! * Other interfaces: XDP sees ingress, a TC program attached through tcx sees egress.
//! * `lo`: XDP alone. Everything sent on loopback is received on loopback: `loopback_xmit()`
//!   (drivers/net/loopback.c) hands each transmitted skb to `__netif_rx()`, so it passes the
//!   receive path, where generic XDP runs (`do_xdp_generic()` in net/core/dev.c, called from
//!   `__netif_receive_skb_core()`). A TC egress program there would see every packet twice.
//!
//! Loopback packets are GSO super-packets of up to 64 KB. Generic XDP must hand a program that
//! is not multi-buffer aware a linear skb, and linearising 64 KB can fail (the packet is then
//! dropped) or cost a large copy (`netif_skb_check_for_xdp()` in net/core/dev.c). The XDP
//! program is therefore declared `xdp.frags` and reads payload with `bpf_xdp_load_bytes`,
//! which copies across fragments.
//!
//! # Never in the way
//!
//! Both programs only read. XDP always returns `XDP_PASS`. The TC program returns `TCX_NEXT`
//! (-1, the same value as `TC_ACT_UNSPEC`): the packet continues exactly as if the program were
//! not there, including to any tcx program attached after it (`TC_ACT_OK` would end the tcx
//! chain and skip them).
#![no_std]
#![no_main]
// Atomic read-modify-write on map values (see `capture::update_connection`); the crate is
// built with RUSTC_BOOTSTRAP=1 for `-Z build-std` anyway.
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod capture;
mod packet;
mod parse;
mod skip;

use aya_ebpf::{
    bindings::{tcx_action_base::TCX_NEXT, xdp_action},
    macros::{classifier, map, xdp},
    maps::{LruHashMap, PerCpuArray, RingBuf},
    programs::{TcContext, XdpContext},
};
use webui_monitor_common::{CaptureStats, Config, ConnKey, ConnStats, SkipSpans};

/// Written by the loader before load (see `Config`).
#[unsafe(no_mangle)]
static CONFIG: Config = Config::EMPTY;

/// Payload chunks. The size here is a placeholder: the loader sets it.
#[map]
static CHUNKS: RingBuf = RingBuf::with_byte_size(16 * 1024 * 1024, 0);

/// Per-connection counters. The loader sets the size (default 65,536 connections); the least
/// recently used connection is evicted when full.
#[map]
static CONNECTIONS: LruHashMap<ConnKey, ConnStats> = LruHashMap::with_max_entries(65_536, 0);

/// Payload ranges userspace does not read, per connection and direction (see `SkipSpan`).
/// The loader sets the size (as many as connections); userspace deletes a connection's entries
/// when it ends, and the least recently used entry is evicted when full.
#[map]
static SKIP: LruHashMap<ConnKey, SkipSpans> = LruHashMap::with_max_entries(65_536, 0);

/// Global counters, per CPU.
#[map]
static STATS: PerCpuArray<CaptureStats> = PerCpuArray::with_max_entries(1, 0);

/// An all-zero `T` built with 64-bit stores.
///
/// LLVM merges zero stores into `memset`, which on BPF becomes a call into a byte loop (about
/// a hundred instructions for a 40-byte key, walked by the verifier byte by byte); volatile
/// stores cannot be merged.
#[inline(always)]
pub(crate) fn zeroed<T>() -> T {
    const { assert!(size_of::<T>() % 8 == 0 && align_of::<T>() >= 8) };
    let mut value = core::mem::MaybeUninit::<T>::uninit();
    let words = value.as_mut_ptr().cast::<u64>();
    for i in 0..size_of::<T>() / 8 {
        // SAFETY: in bounds and aligned (asserted above).
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
    // SAFETY: every byte was written; all-zero is valid for the plain-data types used here.
    unsafe { value.assume_init() }
}

#[xdp(frags)]
pub fn webui_monitor_ingress(ctx: XdpContext) -> u32 {
    capture::on_packet(&ctx);
    xdp_action::XDP_PASS
}

#[classifier]
pub fn webui_monitor_egress(ctx: TcContext) -> i32 {
    capture::on_packet(&ctx);
    TCX_NEXT
}

/// The benchmark baseline: what an XDP program costs before it does anything.
#[xdp(frags)]
pub fn webui_monitor_baseline(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// A benchmark reference, never attached: the ring copy alone (see
/// `capture::bench_ring_copy`).
#[xdp(frags)]
pub fn webui_monitor_bench_ring_copy(ctx: XdpContext) -> u32 {
    capture::bench_ring_copy(&ctx);
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
