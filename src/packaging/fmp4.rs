//! CMAF init and media segments (ISO/IEC 23000-19, 14496-12 §8.8).
//!
//! Media segment data is never copied: the segment is the freshly written `styp`+`moof`+`mdat`
//! header followed by zero-copy views of the source file (see `storage::mmap`).

use bytes::Bytes;

use crate::index::TrackIndex;
use crate::mp4::codes::*;
use crate::mp4::writer::{write_box, write_full_box, PutBe};
use crate::mp4::{FourCC, Sample};
use crate::storage::mmap::MappedFile;

/// Why a segment could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    /// The source file no longer holds the sample bytes (it shrank after indexing).
    #[error("sample data at {offset}+{size} is outside the mapped file")]
    SampleOutOfFile {
        /// Sample offset.
        offset: u64,
        /// Sample size.
        size: u64,
    },
    /// A segment too large for 32-bit box sizes.
    #[error("segment too large")]
    TooLarge,
}

/// The CMAF header for one track: `ftyp` + `moov` with an empty sample table and `mvex`.
pub fn init_segment(mvhd: &[u8], track: &TrackIndex) -> Vec<u8> {
    let b = &track.init_boxes;
    let mut out = Vec::with_capacity(1024);
    write_box(&mut out, FTYP, |o| {
        o.extend_from_slice(b"iso6");
        o.put_u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41", b"dash"] {
            o.extend_from_slice(brand);
        }
    });
    write_box(&mut out, MOOV, |o| {
        o.extend_from_slice(mvhd);
        write_box(o, TRAK, |o| {
            o.extend_from_slice(&b.tkhd);
            if let Some(edts) = &b.edts {
                o.extend_from_slice(edts);
            }
            write_box(o, MDIA, |o| {
                o.extend_from_slice(&b.mdhd);
                o.extend_from_slice(&b.hdlr);
                write_box(o, MINF, |o| {
                    match &b.media_header {
                        Some(h) => o.extend_from_slice(h),
                        None => write_full_box(o, NMHD, 0, 0, |_| {}),
                    }
                    write_box(o, DINF, |o| {
                        write_full_box(o, DREF, 0, 0, |o| {
                            o.put_u32(1);
                            // 'url ' with flag 1: media data is in this file.
                            write_full_box(o, FourCC(*b"url "), 0, 1, |_| {});
                        });
                    });
                    write_box(o, STBL, |o| {
                        o.extend_from_slice(&b.stsd);
                        for kind in [STTS, STSC, STCO] {
                            write_full_box(o, kind, 0, 0, |o| o.put_u32(0));
                        }
                        write_full_box(o, STSZ, 0, 0, |o| {
                            o.put_u32(0);
                            o.put_u32(0);
                        });
                    });
                });
            });
        });
        write_box(o, MVEX, |o| {
            write_full_box(o, TREX, 0, 0, |o| {
                o.put_u32(track.id);
                o.put_u32(1);
                o.put_u32(0);
                o.put_u32(0);
                o.put_u32(0);
            });
        });
    });
    out
}

const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x2_0000;
const TRUN_FLAGS: u32 = 0x1 | 0x100 | 0x200 | 0x400 | 0x800;
/// `sample_depends_on = 2` (an I-frame).
const SYNC_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const NON_SYNC_FLAGS: u32 = 0x0101_0000;

/// A media segment for `samples` of `track`, numbered `sequence`: the header, then the sample
/// bytes as views of `file` (adjacent samples coalesced into one view).
pub fn media_segment(
    track: &TrackIndex,
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
    file: &MappedFile,
) -> Result<Vec<Bytes>, SegmentError> {
    let data_len: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    let negative_cts = samples.iter().any(|s| s.cts < 0);
    let mut head = Vec::with_capacity(128usize.saturating_add(samples.len().saturating_mul(16)));
    write_box(&mut head, STYP, |o| {
        o.extend_from_slice(b"msdh");
        o.put_u32(0);
        for brand in [b"msdh", b"msix", b"cmfs"] {
            o.extend_from_slice(brand);
        }
    });
    let moof_start = head.len();
    let mut data_offset_at = 0usize;
    write_box(&mut head, MOOF, |o| {
        write_full_box(o, MFHD, 0, 0, |o| o.put_u32(sequence));
        write_box(o, TRAF, |o| {
            write_full_box(o, TFHD, 0, TFHD_DEFAULT_BASE_IS_MOOF, |o| {
                o.put_u32(track.id)
            });
            write_full_box(o, TFDT, 1, 0, |o| o.put_u64(base_decode_time));
            write_full_box(o, TRUN, u8::from(negative_cts), TRUN_FLAGS, |o| {
                o.put_u32(u32::try_from(samples.len()).unwrap_or(u32::MAX));
                data_offset_at = o.len();
                o.put_i32(0);
                for s in samples {
                    o.put_u32(s.duration);
                    o.put_u32(s.size);
                    o.put_u32(if s.sync { SYNC_FLAGS } else { NON_SYNC_FLAGS });
                    o.put_i32(s.cts);
                }
            });
        });
    });
    let moof_len = head.len().saturating_sub(moof_start);
    // data_offset is relative to the moof start: past the moof and the 8-byte mdat header.
    let data_offset =
        i32::try_from(moof_len.saturating_add(8)).map_err(|_| SegmentError::TooLarge)?;
    if let Some(slot) = head.get_mut(data_offset_at..data_offset_at.saturating_add(4)) {
        slot.copy_from_slice(&data_offset.to_be_bytes());
    }
    let mdat_size =
        u32::try_from(data_len.saturating_add(8)).map_err(|_| SegmentError::TooLarge)?;
    head.put_u32(mdat_size);
    head.extend_from_slice(&MDAT.0);

    let mut chunks = vec![Bytes::from(head)];
    let mut run: Option<(u64, u64)> = None;
    let flush = |run: (u64, u64), chunks: &mut Vec<Bytes>| {
        file.slice(run.0, run.1)
            .map(|b| chunks.push(b))
            .ok_or(SegmentError::SampleOutOfFile {
                offset: run.0,
                size: run.1,
            })
    };
    for s in samples {
        let size = u64::from(s.size);
        run = match run {
            Some((start, len)) if start.saturating_add(len) == s.offset => {
                Some((start, len.saturating_add(size)))
            }
            Some(r) => {
                flush(r, &mut chunks)?;
                Some((s.offset, size))
            }
            None => Some((s.offset, size)),
        };
    }
    if let Some(r) = run {
        flush(r, &mut chunks)?;
    }
    Ok(chunks)
}
