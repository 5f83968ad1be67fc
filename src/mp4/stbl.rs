//! Sample tables of a progressive file (ISO/IEC 14496-12 §8.6–§8.7): `stts`, `ctts`, `stss`,
//! `stsc`, `stsz`/`stz2`, `stco`/`co64` flattened into one [`Sample`] per access unit.

use super::codes::*;
use super::error::{Error, Result};
use super::moov::MAX_SAMPLES;
use super::reader::{self, Reader};
use super::Sample;

/// Flattens the sample tables in an `stbl` body. Every sample must lie inside the file.
pub fn samples(stbl: &[u8], file_len: u64) -> Result<Vec<Sample>> {
    let sizes = sample_sizes(stbl)?;
    let n = sizes.len();
    let cap = n.min(MAX_SAMPLES);
    let mut out: Vec<Sample> = Vec::with_capacity(cap);

    // stts: durations and decode times.
    let stts = reader::require(stbl, STBL, STTS)?;
    let mut r = Reader::new(stts.body, STTS);
    r.full_header()?;
    let entries = r.u32()?;
    let entries = r.check_count(entries, 8)?;
    let mut dts: u64 = 0;
    for _ in 0..entries {
        let count = r.u32()?;
        let delta = r.u32()?;
        for _ in 0..count {
            let Some(&size) = sizes.get(out.len()) else {
                break;
            };
            out.push(Sample { offset: 0, dts, size, duration: delta, cts: 0, sync: true });
            dts = dts.checked_add(u64::from(delta)).ok_or(r.invalid("decode time overflows"))?;
        }
    }
    if out.len() != n {
        return Err(Error::Invalid { kind: STTS, reason: "sample count differs from stsz" });
    }

    // ctts: composition offsets (version 1 allows negative values; version 0 ones are read as
    // signed too, which is what encoders that write v0 with "negative" offsets mean).
    if let Some(ctts) = reader::find(stbl, STBL, CTTS)? {
        let mut r = Reader::new(ctts.body, CTTS);
        r.full_header()?;
        let entries = r.u32()?;
        let entries = r.check_count(entries, 8)?;
        let mut it = out.iter_mut();
        'outer: for _ in 0..entries {
            let count = r.u32()?;
            let offset = r.i32()?;
            for _ in 0..count {
                let Some(s) = it.next() else { break 'outer };
                s.cts = offset;
            }
        }
    }

    // stss: sync samples; without it every sample is a sync sample.
    if let Some(stss) = reader::find(stbl, STBL, STSS)? {
        let mut r = Reader::new(stss.body, STSS);
        r.full_header()?;
        let entries = r.u32()?;
        let entries = r.check_count(entries, 4)?;
        for s in out.iter_mut() {
            s.sync = false;
        }
        for _ in 0..entries {
            let number = r.u32()?;
            let index = usize::try_from(number).ok().and_then(|i| i.checked_sub(1));
            if let Some(s) = index.and_then(|i| out.get_mut(i)) {
                s.sync = true;
            }
        }
    }

    // stco/co64 + stsc: file offsets.
    let offsets = chunk_offsets(stbl)?;
    let stsc = reader::require(stbl, STBL, STSC)?;
    let mut r = Reader::new(stsc.body, STSC);
    r.full_header()?;
    let entries = r.u32()?;
    let entries = r.check_count(entries, 12)?;
    let mut runs = Vec::with_capacity(entries);
    for _ in 0..entries {
        let first_chunk = r.u32()?;
        let per_chunk = r.u32()?;
        r.u32()?; // sample_description_index: one entry per track is all we serve
        runs.push((first_chunk, per_chunk));
    }
    let mut sample = 0usize;
    for (i, &(first_chunk, per_chunk)) in runs.iter().enumerate() {
        let first = usize::try_from(first_chunk).ok().and_then(|c| c.checked_sub(1));
        let first = first.ok_or(Error::Invalid { kind: STSC, reason: "first_chunk 0" })?;
        let last = match runs.get(i.saturating_add(1)) {
            Some(&(next, _)) => usize::try_from(next).unwrap_or(usize::MAX).saturating_sub(1),
            None => offsets.len(),
        };
        for chunk in first..last.min(offsets.len()) {
            let Some(&chunk_offset) = offsets.get(chunk) else {
                break;
            };
            let mut pos = chunk_offset;
            for _ in 0..per_chunk {
                let Some(s) = out.get_mut(sample) else { break };
                s.offset = pos;
                pos = pos
                    .checked_add(u64::from(s.size))
                    .ok_or(Error::Invalid { kind: STCO, reason: "offset overflows" })?;
                if pos > file_len {
                    return Err(Error::Invalid { kind: STCO, reason: "sample lies past end of file" });
                }
                sample = sample.saturating_add(1);
            }
        }
    }
    if sample != n {
        return Err(Error::Invalid { kind: STSC, reason: "chunks do not cover every sample" });
    }
    Ok(out)
}

fn sample_sizes(stbl: &[u8]) -> Result<Vec<u32>> {
    if let Some(stsz) = reader::find(stbl, STBL, STSZ)? {
        let mut r = Reader::new(stsz.body, STSZ);
        r.full_header()?;
        let constant = r.u32()?;
        let count = r.u32()?;
        let count_usize = usize::try_from(count).map_err(|_| r.invalid("too many samples"))?;
        if count_usize > MAX_SAMPLES {
            return Err(Error::Invalid { kind: STSZ, reason: "sample count above the per-track limit" });
        }
        if constant != 0 {
            return Ok(vec![constant; count_usize]);
        }
        let count = r.check_count(count, 4)?;
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            v.push(r.u32()?);
        }
        return Ok(v);
    }
    let stz2 = reader::require(stbl, STBL, STZ2)?;
    let mut r = Reader::new(stz2.body, STZ2);
    r.full_header()?;
    r.skip(3)?;
    let field = r.u8()?;
    let count = r.u32()?;
    let count = usize::try_from(count).map_err(|_| r.invalid("too many samples"))?;
    if count > MAX_SAMPLES {
        return Err(Error::Invalid { kind: STZ2, reason: "sample count above the per-track limit" });
    }
    let mut v = Vec::with_capacity(count.min(r.remaining().saturating_mul(2)));
    match field {
        16 => {
            for _ in 0..count {
                v.push(u32::from(r.u16()?));
            }
        }
        8 => {
            for _ in 0..count {
                v.push(u32::from(r.u8()?));
            }
        }
        4 => {
            let mut i = 0;
            while i < count {
                let b = r.u8()?;
                v.push(u32::from(b >> 4));
                if i.saturating_add(1) < count {
                    v.push(u32::from(b & 0xf));
                }
                i = i.saturating_add(2);
            }
        }
        _ => return Err(r.invalid("field_size must be 4, 8 or 16")),
    }
    Ok(v)
}

fn chunk_offsets(stbl: &[u8]) -> Result<Vec<u64>> {
    if let Some(stco) = reader::find(stbl, STBL, STCO)? {
        let mut r = Reader::new(stco.body, STCO);
        r.full_header()?;
        let n = r.u32()?;
        let n = r.check_count(n, 4)?;
        return (0..n).map(|_| r.u32().map(u64::from)).collect();
    }
    let co64 = reader::require(stbl, STBL, CO64)?;
    let mut r = Reader::new(co64.body, CO64);
    r.full_header()?;
    let n = r.u32()?;
    let n = r.check_count(n, 8)?;
    (0..n).map(|_| r.u64()).collect()
}
