//! A track's samples held compactly: 2–4 bytes per sample plus 8 per run, instead of the
//! 32 bytes of a [`Sample`] (issue 12.4: < 2 MB of index per rendition-hour; AAC at 48 kHz has
//! 168,750 samples an hour, so the budget is ≈ 12 bytes per sample all-in).
//!
//! Only sizes vary sample by sample in real files, so only they are stored per sample. Everything
//! else is derived or run-length coded:
//! - offsets: one 8-byte [`Run`] per stretch of samples that are contiguous in the file (a `trun`,
//!   a progressive chunk, or longer: consecutive chunks that follow each other merge), its low 32
//!   bits there and the high 32 bits run-length coded, the rest by adding sizes; progressive
//!   files interleave one-sample chunks, so a run a sample must stay cheap;
//! - decode times: one [`Mark`] where the timeline does not continue, and at least every
//!   [`MARK_EVERY`] samples (so finding a sample's time adds at most that many durations), the
//!   rest by adding durations;
//! - sizes as `u16` when every one fits (audio), else `u32`;
//! - durations and composition offsets: (first sample, value) entries where the value changes;
//! - sync flags: the indices of whichever of sync / non-sync samples is the shorter list.
//!
//! Decoding is exact: a sample joins a run only when its offset and decode time are exactly what
//! the run predicts, so [`SampleTable::get`] returns the very `Sample` that was pushed.

use crate::mp4::Sample;

/// A stretch of samples laid out back to back in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Run {
    /// Its first sample.
    first: u32,
    /// The low 32 bits of that sample's file offset (the high ones: `SampleTable::offset_hi`).
    offset_lo: u32,
}

/// A decode-time checkpoint: sample `first` has decode time `dts`, the following ones add
/// their durations up to the next mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mark {
    first: u32,
    dts: u64,
}

/// Longest stretch of samples between two decode-time marks.
const MARK_EVERY: u32 = 256;

fn lo32(v: u64) -> u32 {
    u32::try_from(v & u64::from(u32::MAX)).unwrap_or(0)
}

fn hi32(v: u64) -> u32 {
    u32::try_from(v >> 32).unwrap_or(u32::MAX)
}

/// Where a run-length coded value changes: from sample `first` on, the value is `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Change<T> {
    first: u32,
    value: T,
}

/// More samples than a `u32` counts (the table indexes with `u32` to stay small).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManySamples;

/// The samples of one track, in decode order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SampleTable {
    /// Sizes while building, and after [`SampleTable::finish`] when one does not fit a `u16`.
    sizes: Vec<u32>,
    /// Sizes after `finish` when every one fits a `u16` (then `sizes` is empty).
    sizes16: Option<Vec<u16>>,
    runs: Vec<Run>,
    /// High 32 bits of run offsets, by the first sample of the run where they change.
    offset_hi: Vec<Change<u32>>,
    marks: Vec<Mark>,
    durations: Vec<Change<u32>>,
    cts: Vec<Change<i32>>,
    /// Composition offsets one per sample instead, when they change at most samples (B-frames):
    /// 4 bytes a sample instead of 8 a change.
    cts_dense: Option<Vec<i32>>,
    /// Sorted sample indices: the sync samples when `listed_sync`, else the non-sync ones.
    flagged: Vec<u32>,
    listed_sync: bool,
    /// While building: the decode time and end offset the next sample must have to join the
    /// last run (`None` when it would overflow).
    next_dts: Option<u64>,
    next_offset: Option<u64>,
}

/// The (value, index of its change entry) for sample `i` of a run-length list.
fn change_at<T: Copy>(list: &[Change<T>], i: u32) -> Option<(T, usize)> {
    let k = list.partition_point(|c| c.first <= i).checked_sub(1)?;
    list.get(k).map(|c| (c.value, k))
}

fn push_change<T: Copy + PartialEq>(list: &mut Vec<Change<T>>, first: u32, value: T) {
    if list.last().is_none_or(|c| c.value != value) {
        list.push(Change { first, value });
    }
}

impl SampleTable {
    /// An empty table.
    pub fn new() -> SampleTable {
        SampleTable { listed_sync: true, ..SampleTable::default() }
    }

    /// The table of `samples` (decode order).
    pub fn from_samples(samples: &[Sample]) -> Result<SampleTable, TooManySamples> {
        let mut t = SampleTable::new();
        for s in samples {
            t.push(*s)?;
        }
        t.finish();
        Ok(t)
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.sizes16.as_ref().map_or(self.sizes.len(), Vec::len)
    }

    fn size(&self, i: usize) -> Option<u32> {
        match &self.sizes16 {
            Some(s) => s.get(i).copied().map(u32::from),
            None => self.sizes.get(i).copied(),
        }
    }

    /// The full file offset of run `r`'s first sample.
    fn run_offset(&self, r: &Run) -> u64 {
        let hi = change_at(&self.offset_hi, r.first).map_or(0, |(v, _)| v);
        (u64::from(hi) << 32) | u64::from(r.offset_lo)
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends a sample (the next in decode order).
    pub fn push(&mut self, s: Sample) -> Result<(), TooManySamples> {
        // A push after `finish` goes back to `u32` sizes.
        if let Some(small) = self.sizes16.take() {
            self.sizes = small.into_iter().map(u32::from).collect();
        }
        let i = u32::try_from(self.sizes.len()).map_err(|_| TooManySamples)?;
        if i == u32::MAX {
            return Err(TooManySamples);
        }
        if self.runs.is_empty() || self.next_offset != Some(s.offset) {
            self.runs.push(Run { first: i, offset_lo: lo32(s.offset) });
            push_change(&mut self.offset_hi, i, hi32(s.offset));
        }
        let continues = self.marks.last().is_some_and(|m| i.saturating_sub(m.first) < MARK_EVERY);
        if !continues || self.next_dts != Some(s.dts) {
            self.marks.push(Mark { first: i, dts: s.dts });
        }
        self.sizes.push(s.size);
        push_change(&mut self.durations, i, s.duration);
        match &mut self.cts_dense {
            Some(dense) => dense.push(s.cts),
            None => push_change(&mut self.cts, i, s.cts),
        }
        if s.sync == self.listed_sync {
            self.flagged.push(i);
        }
        self.next_dts = s.dts.checked_add(u64::from(s.duration));
        self.next_offset = s.offset.checked_add(u64::from(s.size));
        Ok(())
    }

    /// Ends building: keeps the shorter of the sync / non-sync lists and gives back spare
    /// capacity (the table lives as long as its file is served).
    pub fn finish(&mut self) {
        let n = self.len();
        if self.flagged.len() > n / 2 {
            let mut other = Vec::with_capacity(n.saturating_sub(self.flagged.len()));
            let mut listed = self.flagged.iter().peekable();
            for i in 0..u32::try_from(n).unwrap_or(u32::MAX) {
                if listed.next_if(|&&f| f == i).is_none() {
                    other.push(i);
                }
            }
            self.flagged = other;
            self.listed_sync = !self.listed_sync;
        }
        if self.cts_dense.is_none() && self.cts.len() > n / 2 {
            let mut dense = Vec::with_capacity(n);
            for (k, c) in self.cts.iter().enumerate() {
                let end = self.cts.get(k.saturating_add(1)).map_or(n, |d| d.first as usize);
                dense.extend(std::iter::repeat_n(c.value, end.saturating_sub(c.first as usize)));
            }
            self.cts = Vec::new();
            self.cts_dense = Some(dense);
        }
        if let Some(d) = &mut self.cts_dense {
            d.shrink_to_fit();
        }
        if self.sizes16.is_none() && self.sizes.iter().all(|&x| x <= u32::from(u16::MAX)) {
            let small: Vec<u16> = self.sizes.iter().map(|&x| u16::try_from(x).unwrap_or(u16::MAX)).collect();
            self.sizes = Vec::new();
            self.sizes16 = Some(small);
        }
        self.sizes.shrink_to_fit();
        self.runs.shrink_to_fit();
        self.offset_hi.shrink_to_fit();
        self.marks.shrink_to_fit();
        self.durations.shrink_to_fit();
        self.cts.shrink_to_fit();
        self.flagged.shrink_to_fit();
    }

    /// Entry counts (sizes, runs, duration changes, composition-offset changes, flagged), for
    /// tests and diagnostics.
    pub fn shape(&self) -> [usize; 5] {
        [self.len(), self.runs.len(), self.durations.len(), self.cts.len(), self.flagged.len()]
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        self.sizes.capacity() * size_of::<u32>()
            + self.sizes16.as_ref().map_or(0, |s| s.capacity() * size_of::<u16>())
            + self.runs.capacity() * size_of::<Run>()
            + self.offset_hi.capacity() * size_of::<Change<u32>>()
            + self.marks.capacity() * size_of::<Mark>()
            + self.durations.capacity() * size_of::<Change<u32>>()
            + self.cts.capacity() * size_of::<Change<i32>>()
            + self.cts_dense.as_ref().map_or(0, |d| d.capacity() * size_of::<i32>())
            + self.flagged.capacity() * size_of::<u32>()
    }

    /// Sample `i`.
    pub fn get(&self, i: usize) -> Option<Sample> {
        self.iter_from(i).next()
    }

    /// The last sample.
    pub fn last(&self) -> Option<Sample> {
        self.get(self.len().checked_sub(1)?)
    }

    /// Samples `first..end`, or `None` when the range is not inside the table.
    pub fn range(&self, first: usize, end: usize) -> Option<Vec<Sample>> {
        if first > end || end > self.len() {
            return None;
        }
        let out: Vec<Sample> = self.iter_from(first).take(end.saturating_sub(first)).collect();
        (out.len() == end.saturating_sub(first)).then_some(out)
    }

    /// Every sample, in decode order.
    pub fn iter(&self) -> Samples<'_> {
        self.iter_from(0)
    }

    /// Samples from `i` on (empty when `i` is past the end).
    pub fn iter_from(&self, i: usize) -> Samples<'_> {
        let empty = Samples { table: self, i: u32::MAX, run: 0, mark: 0, offset: 0, dts: 0, dur: 0, cts: 0, flag: 0 };
        let Ok(at) = u32::try_from(i) else { return empty };
        if i >= self.len() {
            return empty;
        }
        let Some(run_k) = self.runs.partition_point(|r| r.first <= at).checked_sub(1) else {
            return empty;
        };
        let Some(mark_k) = self.marks.partition_point(|m| m.first <= at).checked_sub(1) else {
            return empty;
        };
        let (Some(run), Some(mark)) = (self.runs.get(run_k), self.marks.get(mark_k)) else { return empty };
        // Walk from the run's start to `i` for the offset (runs are a fragment or chunk long) and
        // from the mark to `i` for the decode time (at most MARK_EVERY samples).
        let mut offset = self.run_offset(run);
        for j in run.first..at {
            offset = offset.saturating_add(u64::from(self.size(j as usize).unwrap_or(0)));
        }
        let mut dts = mark.dts;
        let (mut d, mut dk) = match change_at(&self.durations, mark.first) {
            Some(x) => x,
            None => return empty,
        };
        for j in mark.first..at {
            dts = dts.saturating_add(u64::from(d));
            if let Some(c) = self.durations.get(dk.saturating_add(1)).filter(|c| c.first == j.saturating_add(1)) {
                d = c.value;
                dk = dk.saturating_add(1);
            }
        }
        let cts_k = change_at(&self.cts, at).map_or(0, |(_, k)| k);
        let flag = self.flagged.partition_point(|&f| f < at);
        Samples { table: self, i: at, run: run_k, mark: mark_k, offset, dts, dur: dk, cts: cts_k, flag }
    }
}

/// Sequential decoder over a [`SampleTable`]: O(1) per sample.
#[derive(Debug, Clone)]
pub struct Samples<'a> {
    table: &'a SampleTable,
    /// Next sample (`u32::MAX`: exhausted).
    i: u32,
    /// Its run and decode-time mark, and the running offset and decode time.
    run: usize,
    mark: usize,
    offset: u64,
    dts: u64,
    /// Current entries of the duration and composition-offset lists, and the next flagged index.
    dur: usize,
    cts: usize,
    flag: usize,
}

impl Iterator for Samples<'_> {
    type Item = Sample;

    fn next(&mut self) -> Option<Sample> {
        let t = self.table;
        let size = t.size(self.i as usize)?;
        if let Some(r) = t.runs.get(self.run.saturating_add(1)).filter(|r| r.first == self.i) {
            self.run = self.run.saturating_add(1);
            self.offset = t.run_offset(r);
        }
        if let Some(m) = t.marks.get(self.mark.saturating_add(1)).filter(|m| m.first == self.i) {
            self.mark = self.mark.saturating_add(1);
            self.dts = m.dts;
        }
        if t.durations.get(self.dur.saturating_add(1)).is_some_and(|c| c.first == self.i) {
            self.dur = self.dur.saturating_add(1);
        }
        if t.cts.get(self.cts.saturating_add(1)).is_some_and(|c| c.first == self.i) {
            self.cts = self.cts.saturating_add(1);
        }
        let duration = t.durations.get(self.dur).map_or(0, |c| c.value);
        let cts = match &t.cts_dense {
            Some(d) => d.get(self.i as usize).copied().unwrap_or(0),
            None => t.cts.get(self.cts).map_or(0, |c| c.value),
        };
        let listed = t.flagged.get(self.flag).is_some_and(|&f| f == self.i);
        if listed {
            self.flag = self.flag.saturating_add(1);
        }
        let s = Sample { offset: self.offset, dts: self.dts, size, duration, cts, sync: listed == t.listed_sync };
        self.offset = self.offset.saturating_add(u64::from(size));
        self.dts = self.dts.saturating_add(u64::from(duration));
        self.i = self.i.saturating_add(1);
        Some(s)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.table.len().saturating_sub(self.i as usize);
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(offset: u64, dts: u64, size: u32, duration: u32, cts: i32, sync: bool) -> Sample {
        Sample { offset, dts, size, duration, cts, sync }
    }

    /// Every access path gives back exactly the pushed samples.
    pub(crate) fn assert_round_trip(samples: &[Sample]) -> SampleTable {
        let t = SampleTable::from_samples(samples).expect("table");
        assert_eq!(t.len(), samples.len());
        assert_eq!(t.iter().collect::<Vec<_>>(), samples, "iter");
        for (i, want) in samples.iter().enumerate() {
            assert_eq!(t.get(i).as_ref(), Some(want), "get({i})");
        }
        let n = samples.len();
        for (a, b) in [(0, n), (n / 3, n / 2), (n / 2, n), (n, n)] {
            assert_eq!(t.range(a, b).as_deref(), samples.get(a..b), "range({a}, {b})");
        }
        assert_eq!(t.range(0, n + 1), None);
        assert_eq!(t.get(n), None);
        assert_eq!(t.last().as_ref(), samples.last());
        t
    }

    #[test]
    fn empty_table() {
        let t = assert_round_trip(&[]);
        assert!(t.is_empty() && t.iter().next().is_none() && t.last().is_none());
    }

    #[test]
    fn irregular_samples_round_trip() {
        // Gaps in offsets and decode times, changing durations and composition offsets, a
        // mostly-sync and a mostly-non-sync stretch, and values at their type's limits.
        let mut v = vec![
            s(100, 0, 10, 512, 0, true),
            s(110, 512, 20, 512, -1024, false),
            s(130, 1024, 0, 0, i32::MAX, false),
            s(130, 1024, 5, 1, i32::MIN, true),
            s(9_000, 1025, 7, 3, 0, true),
            s(9_007, 5_000, 9, u32::MAX, 0, true),
            s(0, 5_000 + u64::from(u32::MAX), u32::MAX, 1, 0, false),
            s(u64::MAX - 10, u64::MAX - 1, 4, 2, 0, true),
            s(u64::MAX - 6, u64::MAX, 4, 2, 0, true),
        ];
        for k in 0..300u64 {
            v.push(s(50_000 + k * 100, 10_000 + k * 40, 100, 40, ((k % 4) as i32 - 1) * 40, k % 25 == 0));
        }
        // A run that crosses 4 GiB (the offset's high half changes inside it), then one that
        // starts past it, and a long contiguous stretch (several decode-time marks).
        let base = (1u64 << 32) - 150;
        for k in 0..3u64 {
            v.push(s(base + k * 100, 20_000 + k * 10, 100, 10, 0, true));
        }
        v.push(s((5u64 << 32) + 7, 20_030, 70_000, 10, 0, false));
        for k in 0..1000u64 {
            v.push(s((5u64 << 32) + 70_007 + k * 3, 20_040 + k * 10, 3, 10, 0, false));
        }
        assert_round_trip(&v);
        let all_sync: Vec<Sample> = v.iter().map(|x| Sample { sync: true, ..*x }).collect();
        assert_round_trip(&all_sync);
    }

    #[test]
    fn contiguous_samples_cost_their_sizes() {
        // One hour of AAC at 48 kHz in 2 s fragments: the table must stay near 4 bytes a sample.
        let mut v = Vec::new();
        let (mut off, mut dts) = (1_000u64, 0u64);
        for k in 0..168_750u64 {
            if k % 94 == 0 {
                off += 600; // a moof between fragments
            }
            let size = 300 + (k * 7 % 90) as u32;
            v.push(s(off, dts, size, 1024, 0, true));
            off += u64::from(size);
            dts += 1024;
        }
        let t = assert_round_trip(&v);
        assert!(t.heap_bytes() < 168_750 * 5, "{} bytes", t.heap_bytes());
    }

    #[test]
    fn one_sample_chunks_stay_cheap() {
        // One hour of AAC at 48 kHz in a progressive file whose chunks are one sample each,
        // interleaved with video: every sample starts a run, the timeline never breaks. u16
        // sizes + an 8-byte run a sample: ~10 bytes a sample.
        let mut v = Vec::new();
        let (mut off, mut dts) = (1_000u64, 0u64);
        for k in 0..168_750u64 {
            let size = 300 + (k * 7 % 90) as u32;
            v.push(s(off, dts, size, 1024, 0, true));
            off += u64::from(size) + 4_000 + k % 3; // a video chunk in between
            dts += 1024;
        }
        let t = assert_round_trip(&v);
        assert_eq!(t.shape()[1], v.len(), "a run a sample");
        assert!(t.heap_bytes() < 168_750 * 11, "{} bytes", t.heap_bytes());
    }
}
