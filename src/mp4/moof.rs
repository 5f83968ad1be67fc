//! `moof` (ISO/IEC 14496-12 §8.8.4–§8.8.12): the samples of one fragment of a fragmented file.

use super::codes::*;
use super::error::{Error, Result};
use super::moov::{Trex, MAX_SAMPLES};
use super::reader::{self, Reader};
use super::Sample;

/// The samples one `traf` contributes to its track.
#[derive(Debug)]
pub struct FragmentRun {
    /// Track they belong to.
    pub track_id: u32,
    /// `tfdt.baseMediaDecodeTime`, when present.
    pub base_decode_time: Option<u64>,
    /// Samples, with `dts` relative to the fragment start (caller adds the base).
    pub samples: Vec<Sample>,
}

const TFHD_BASE_DATA_OFFSET: u32 = 0x1;
const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x2;
const TFHD_DEFAULT_DURATION: u32 = 0x8;
const TFHD_DEFAULT_SIZE: u32 = 0x10;
const TFHD_DEFAULT_FLAGS: u32 = 0x20;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x2_0000;

const TRUN_DATA_OFFSET: u32 = 0x1;
const TRUN_FIRST_SAMPLE_FLAGS: u32 = 0x4;
const TRUN_DURATION: u32 = 0x100;
const TRUN_SIZE: u32 = 0x200;
const TRUN_FLAGS: u32 = 0x400;
const TRUN_CTS: u32 = 0x800;

/// `sample_is_non_sync_sample` in the sample flags (§8.8.3.1).
const NON_SYNC: u32 = 0x1_0000;

/// Parses a `moof` body found at `moof_offset` in a file of `file_len` bytes.
/// `trex` gives the defaults of a track id.
pub fn parse_moof(
    moof: &[u8],
    moof_offset: u64,
    file_len: u64,
    trex: impl Fn(u32) -> Option<Trex>,
) -> Result<Vec<FragmentRun>> {
    let mut out = Vec::new();
    for b in reader::boxes(moof, MOOF) {
        let b = b?;
        if b.kind != TRAF {
            continue;
        }
        out.push(parse_traf(b.body, moof_offset, file_len, &trex)?);
    }
    Ok(out)
}

fn parse_traf(
    traf: &[u8],
    moof_offset: u64,
    file_len: u64,
    trex: &impl Fn(u32) -> Option<Trex>,
) -> Result<FragmentRun> {
    let tfhd = reader::require(traf, TRAF, TFHD)?;
    let mut r = Reader::new(tfhd.body, TFHD);
    let (_, flags) = r.full_header()?;
    let track_id = r.u32()?;
    let defaults = trex(track_id).ok_or(Error::Invalid { kind: TFHD, reason: "unknown track_ID" })?;
    let base = if flags & TFHD_BASE_DATA_OFFSET != 0 { r.u64()? } else { moof_offset };
    // Without base-data-offset the base is the moof itself when default-base-is-moof is set; files
    // that set neither (rare, pre-2012 muxers with one traf) also resolve to the moof start.
    let _ = flags & TFHD_DEFAULT_BASE_IS_MOOF;
    if flags & TFHD_SAMPLE_DESCRIPTION_INDEX != 0 {
        r.u32()?;
    }
    let d_duration = if flags & TFHD_DEFAULT_DURATION != 0 { r.u32()? } else { defaults.duration };
    let d_size = if flags & TFHD_DEFAULT_SIZE != 0 { r.u32()? } else { defaults.size };
    let d_flags = if flags & TFHD_DEFAULT_FLAGS != 0 { r.u32()? } else { defaults.flags };

    let base_decode_time = match reader::find(traf, TRAF, TFDT)? {
        Some(tfdt) => {
            let mut r = Reader::new(tfdt.body, TFDT);
            let (version, _) = r.full_header()?;
            Some(r.uint_v(version)?)
        }
        None => None,
    };

    let mut samples = Vec::new();
    let mut next_offset = base;
    let mut dts = 0u64;
    for b in reader::boxes(traf, TRAF) {
        let b = b?;
        if b.kind != TRUN {
            continue;
        }
        let mut r = Reader::new(b.body, TRUN);
        let (_version, tflags) = r.full_header()?;
        let count = r.u32()?;
        let mut pos = if tflags & TRUN_DATA_OFFSET != 0 {
            let off = i64::from(r.i32()?);
            base.checked_add_signed(off).ok_or(r.invalid("data offset out of range"))?
        } else {
            next_offset
        };
        let first_flags = if tflags & TRUN_FIRST_SAMPLE_FLAGS != 0 { Some(r.u32()?) } else { None };
        let per_sample = [TRUN_DURATION, TRUN_SIZE, TRUN_FLAGS, TRUN_CTS]
            .iter()
            .filter(|&&f| tflags & f != 0)
            .count()
            .saturating_mul(4);
        let count = if per_sample > 0 {
            r.check_count(count, per_sample)?
        } else {
            usize::try_from(count).map_err(|_| r.invalid("sample count"))?
        };
        if samples.len().saturating_add(count) > MAX_SAMPLES {
            return Err(Error::Invalid { kind: TRUN, reason: "sample count above the per-track limit" });
        }
        for i in 0..count {
            let duration = if tflags & TRUN_DURATION != 0 { r.u32()? } else { d_duration };
            let size = if tflags & TRUN_SIZE != 0 { r.u32()? } else { d_size };
            let mut sflags = if tflags & TRUN_FLAGS != 0 { r.u32()? } else { d_flags };
            if i == 0 {
                if let Some(f) = first_flags {
                    sflags = f;
                }
            }
            // Version 0 offsets are unsigned in the spec, but writers put signed values there;
            // reading as i32 matches what decoders do.
            let cts = if tflags & TRUN_CTS != 0 { r.i32()? } else { 0 };
            let end = pos.checked_add(u64::from(size)).ok_or(r.invalid("offset overflows"))?;
            if end > file_len {
                return Err(Error::Invalid { kind: TRUN, reason: "sample lies past end of file" });
            }
            samples.push(Sample { offset: pos, dts, size, duration, cts, sync: sflags & NON_SYNC == 0 });
            pos = end;
            dts = dts.checked_add(u64::from(duration)).ok_or(r.invalid("decode time overflows"))?;
        }
        next_offset = pos;
    }
    Ok(FragmentRun { track_id, base_decode_time, samples })
}
