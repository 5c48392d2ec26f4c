//! Kernel timestamps (CLOCK_BOOTTIME, what `bpf_ktime_get_boot_ns` returns) → Unix epoch.
//!
//! BOOTTIME keeps counting through suspend, unlike MONOTONIC, so one offset stays valid across
//! it. The offset is re-sampled periodically to follow NTP steps of the wall clock.
use webui_monitor_core::segment::Timestamp;

/// The offset between CLOCK_REALTIME and CLOCK_BOOTTIME at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootClock {
    /// Epoch nanoseconds at boot (REALTIME − BOOTTIME).
    offset_ns: u64,
}

impl BootClock {
    /// A clock with a known offset (tests, replays).
    pub const fn from_offset(offset_ns: u64) -> Self {
        Self { offset_ns }
    }

    /// Samples the offset now: REALTIME read on both sides of BOOTTIME, so the error is at most
    /// half the (sub-microsecond) sampling window.
    pub fn sample() -> std::io::Result<Self> {
        let before = now_ns(libc::CLOCK_REALTIME)?;
        let boot = now_ns(libc::CLOCK_BOOTTIME)?;
        let after = now_ns(libc::CLOCK_REALTIME)?;
        let realtime = before + (after.saturating_sub(before)) / 2;
        Ok(Self {
            offset_ns: realtime.saturating_sub(boot),
        })
    }

    /// Converts a kernel BOOTTIME timestamp.
    pub const fn to_epoch(&self, boot_ns: u64) -> Timestamp {
        Timestamp(self.offset_ns.saturating_add(boot_ns))
    }
}

/// CLOCK_BOOTTIME now, in nanoseconds (what the kernel stamps records with).
pub fn boot_now_ns() -> std::io::Result<u64> {
    now_ns(libc::CLOCK_BOOTTIME)
}

/// CLOCK_MONOTONIC_COARSE now, in nanoseconds: the clock of the connection table's first/last
/// seen (`bpf_ktime_get_coarse_ns()` reads the same timekeeper value).
pub fn coarse_now_ns() -> std::io::Result<u64> {
    now_ns(libc::CLOCK_MONOTONIC_COARSE)
}

fn now_ns(clock: libc::clockid_t) -> std::io::Result<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_the_offset() {
        let clock = BootClock::from_offset(1_600_000_000_000_000_000);
        assert_eq!(clock.to_epoch(5), Timestamp(1_600_000_000_000_000_005));
        assert_eq!(
            BootClock::from_offset(u64::MAX).to_epoch(1),
            Timestamp(u64::MAX)
        );
    }

    #[test]
    fn sampled_offset_lands_between_two_wall_clock_reads() {
        let before = now_ns(libc::CLOCK_REALTIME).unwrap();
        let clock = BootClock::sample().unwrap();
        let stamped = clock.to_epoch(boot_now_ns().unwrap());
        let after = now_ns(libc::CLOCK_REALTIME).unwrap();
        // Not a timing assertion: ordering of three reads of monotone-in-practice clocks.
        assert!(
            stamped.as_nanos() + 1_000_000 >= before && stamped.as_nanos() <= after + 1_000_000
        );
    }
}
