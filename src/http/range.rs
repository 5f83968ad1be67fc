//! `Range: bytes=…` (RFC 9110 §14). One range is served as 206; several are refused by serving
//! the whole representation (200), which the RFC allows and every CDN handles.

/// What to send for a request's Range header against a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No (usable) range: 200 with everything.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416.
    Unsatisfiable,
}

/// Resolves a Range header value.
pub fn resolve(header: Option<&str>, len: u64) -> RangeOutcome {
    let Some(value) = header else {
        return RangeOutcome::Full;
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full;
    };
    if spec.contains(',') {
        return RangeOutcome::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeOutcome::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeOutcome::Full,
        (true, false) => {
            // Suffix: the last n bytes.
            let Some(n) = num(b) else {
                return RangeOutcome::Full;
            };
            if n == 0 || len == 0 {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial { start: len.saturating_sub(n), end: len.saturating_sub(1) }
        }
        (false, _) => {
            let Some(start) = num(a) else {
                return RangeOutcome::Full;
            };
            let end = if b.is_empty() {
                len.saturating_sub(1)
            } else {
                match num(b) {
                    Some(e) if e >= start => e.min(len.saturating_sub(1)),
                    _ => return RangeOutcome::Full, // invalid syntax: ignore the header
                }
            };
            if start >= len {
                return RangeOutcome::Unsatisfiable;
            }
            RangeOutcome::Partial { start, end }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::*;

    #[test]
    fn ranges() {
        assert_eq!(resolve(None, 10), Full);
        assert_eq!(resolve(Some("bytes=0-3"), 10), Partial { start: 0, end: 3 });
        assert_eq!(resolve(Some("bytes=5-"), 10), Partial { start: 5, end: 9 });
        assert_eq!(resolve(Some("bytes=-3"), 10), Partial { start: 7, end: 9 });
        assert_eq!(resolve(Some("bytes=-30"), 10), Partial { start: 0, end: 9 });
        assert_eq!(resolve(Some("bytes=2-100"), 10), Partial { start: 2, end: 9 });
        assert_eq!(resolve(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=0-1,4-5"), 10), Full);
        assert_eq!(resolve(Some("bytes=5-2"), 10), Full);
        assert_eq!(resolve(Some("items=0-1"), 10), Full);
        assert_eq!(resolve(Some("bytes=99999999999999999999-"), 10), Full);
    }
}
