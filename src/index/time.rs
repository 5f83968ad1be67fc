//! Media time conversions, all in one place: MPD `@timescale`/`S@t`, HLS `#EXTINF` and `tfdt`
//! derive from these, so they cannot disagree.

/// Ticks in `timescale` as seconds.
pub fn seconds(ticks: u64, timescale: u32) -> f64 {
    if timescale == 0 {
        return 0.0;
    }
    ticks as f64 / f64::from(timescale)
}

/// Signed ticks as seconds.
pub fn seconds_signed(ticks: i64, timescale: u32) -> f64 {
    if timescale == 0 {
        return 0.0;
    }
    ticks as f64 / f64::from(timescale)
}

/// `ticks` (in `from`) expressed in `to`, rounded up; `None` on a zero timescale or overflow.
pub fn rescale_ceil(ticks: u64, from: u32, to: u32) -> Option<u64> {
    if from == 0 {
        return None;
    }
    let num = u128::from(ticks).checked_mul(u128::from(to))?;
    let den = u128::from(from);
    u64::try_from(num.div_ceil(den)).ok()
}

/// True when `a` ticks of `ta` and `b` ticks of `tb` are the same instant.
pub fn same_instant(a: u64, ta: u32, b: u64, tb: u32) -> bool {
    u128::from(a) * u128::from(tb) == u128::from(b) * u128::from(ta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds_up() {
        assert_eq!(rescale_ceil(1, 3, 10), Some(4));
        assert_eq!(rescale_ceil(90000, 90000, 48000), Some(48000));
        assert_eq!(rescale_ceil(1, 0, 10), None);
    }

    #[test]
    fn instants_compare_across_timescales() {
        assert!(same_instant(2 * 12800, 12800, 2 * 48000, 48000));
        assert!(!same_instant(1, 12800, 1, 48000));
    }
}
