//! `#[repr(C)]` types shared by the eBPF programs and the daemon.
#![no_std]
