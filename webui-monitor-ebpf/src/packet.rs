//! One view of a packet for both hooks, so XDP and TC share a single parser.
//!
//! Headers are read through direct packet access (the linear part: cheapest, no helper call);
//! payload is copied with the hook's `load_bytes` helper, which also reads paged data: XDP
//! multi-buffer fragments (`bpf_xdp_load_bytes`) and non-linear skbs (`bpf_skb_load_bytes`).
use aya_ebpf::{
    EbpfContext,
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    programs::{TcContext, XdpContext},
};
use core::ffi::c_void;

pub trait Packet: EbpfContext {
    /// Address of the first byte of the linear part.
    fn start(&self) -> usize;
    /// Address one past the last byte of the linear part.
    fn end(&self) -> usize;
    /// Length of the whole packet, fragments included.
    fn total_len(&self) -> u32;
    /// Copies `len` bytes at `offset` (anywhere in the packet) to `dst`.
    ///
    /// # Safety
    /// `dst` must be valid for `len` bytes of writes.
    unsafe fn load_bytes(&self, offset: u32, dst: *mut u8, len: u32) -> Result<(), ()>;

    /// A pointer to a `T` at `offset` in the linear part, bounds-checked for the verifier.
    #[inline(always)]
    fn ptr_at<T>(&self, offset: usize) -> Option<*const T> {
        let start = self.start();
        if start + offset + core::mem::size_of::<T>() > self.end() {
            return None;
        }
        Some((start + offset) as *const T)
    }
}

impl Packet for XdpContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn total_len(&self) -> u32 {
        // Includes the fragments of a multi-buffer frame (data_end only covers the first).
        unsafe { bpf_xdp_get_buff_len(self.ctx) as u32 }
    }
    #[inline(always)]
    unsafe fn load_bytes(&self, offset: u32, dst: *mut u8, len: u32) -> Result<(), ()> {
        let ret = unsafe { bpf_xdp_load_bytes(self.ctx, offset, dst.cast::<c_void>(), len) };
        if ret == 0 { Ok(()) } else { Err(()) }
    }
}

impl Packet for TcContext {
    #[inline(always)]
    fn start(&self) -> usize {
        self.data()
    }
    #[inline(always)]
    fn end(&self) -> usize {
        self.data_end()
    }
    #[inline(always)]
    fn total_len(&self) -> u32 {
        self.len()
    }
    #[inline(always)]
    unsafe fn load_bytes(&self, offset: u32, dst: *mut u8, len: u32) -> Result<(), ()> {
        let ret = unsafe { bpf_skb_load_bytes(self.as_ptr(), offset, dst.cast::<c_void>(), len) };
        if ret == 0 { Ok(()) } else { Err(()) }
    }
}
