//! CMAF init and media segments (ISO/IEC 23000-19, 14496-12 §8.8).
//!
//! Media segment data is never copied: the segment is the freshly written `styp`+`moof`+`mdat`
//! header followed by zero-copy views of the source file (see `storage::mmap`).

use bytes::Bytes;

use crate::index::TrackIndex;
use crate::mp4::codes::*;
use crate::mp4::writer::{write_box, write_full_box, PutBe};
use crate::mp4::{FourCC, Sample};
use crate::storage::source::Source;

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

/// The clear CMAF header for one track: `ftyp` + `moov` with an empty sample table and `mvex`.
pub fn init_segment(mvhd: &[u8], track: &TrackIndex) -> Vec<u8> {
    init_segment_with(mvhd, track, &track.init_boxes.stsd, &[])
}

/// Track id of every output track. Each CMAF track is alone in its file; numbering it 1 whatever
/// its id in the source keeps tools that assume it (Shaka Packager 3.8 crashes on a single-track
/// fragmented file whose track is not 1) working.
pub const OUTPUT_TRACK_ID: u32 = 1;

/// `tkhd` with its track_ID replaced (offset 20 in version 0, 28 in version 1: §8.3.2).
fn renumbered_tkhd(tkhd: &[u8]) -> Vec<u8> {
    let mut out = tkhd.to_vec();
    let at = if tkhd.get(8) == Some(&1) { 28 } else { 20 };
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&OUTPUT_TRACK_ID.to_be_bytes());
    }
    out
}

/// `mvhd` with next_track_ID (its last field) after our single track.
fn renumbered_mvhd(mvhd: &[u8]) -> Vec<u8> {
    let mut out = mvhd.to_vec();
    let len = out.len();
    if let Some(slot) = out.get_mut(len.saturating_sub(4)..) {
        slot.copy_from_slice(&(OUTPUT_TRACK_ID + 1).to_be_bytes());
    }
    out
}

/// A CMAF header with a replacement `stsd` (protected sample entries) and extra `moov` children
/// (`pssh` boxes) appended after the track.
pub fn init_segment_with(mvhd: &[u8], track: &TrackIndex, stsd: &[u8], extra_moov: &[u8]) -> Vec<u8> {
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
        o.extend_from_slice(&renumbered_mvhd(mvhd));
        write_box(o, TRAK, |o| {
            o.extend_from_slice(&renumbered_tkhd(&b.tkhd));
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
                        o.extend_from_slice(stsd);
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
                o.put_u32(OUTPUT_TRACK_ID);
                o.put_u32(1);
                o.put_u32(0);
                o.put_u32(0);
                o.put_u32(0);
            });
        });
        o.extend_from_slice(extra_moov);
    });
    out
}

const TFHD_SAMPLE_DESCRIPTION_INDEX: u32 = 0x2;
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x2_0000;
const TRUN_FLAGS: u32 = 0x1 | 0x100 | 0x200 | 0x400 | 0x800;
/// `sample_depends_on = 2` (an I-frame).
const SYNC_FLAGS: u32 = 0x0200_0000;
/// `sample_depends_on = 1`, `sample_is_non_sync_sample = 1`.
const NON_SYNC_FLAGS: u32 = 0x0101_0000;
/// `senc` flag: subsample information present.
const SENC_SUBSAMPLES: u32 = 0x2;

/// Per-sample encryption information of one fragment (`senc`, `saiz`, `saio`).
pub struct SampleAux<'a> {
    /// Per-sample IVs (`cenc`, 8 bytes); empty with a constant IV (`cbcs`).
    pub ivs: &'a [[u8; 8]],
    /// Per-sample subsample maps; all empty when samples are encrypted whole.
    pub subsamples: &'a [Vec<crate::crypto::Subsample>],
}

/// How a fragment refers to its sample description and encryption.
#[derive(Default)]
pub struct FragmentOptions<'a> {
    /// `tfhd.sample_description_index` (2 for clear-lead fragments of a protected track).
    pub sample_description_index: Option<u32>,
    /// Encryption boxes, for protected fragments.
    pub aux: Option<SampleAux<'a>>,
}

/// `styp` + `moof` + `mdat` header for `samples` whose data (`data_len` bytes) follows directly.
pub fn segment_header(
    track_id: u32,
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
    opts: &FragmentOptions<'_>,
) -> Result<Vec<u8>, SegmentError> {
    let data_len: u64 = samples.iter().map(|s| u64::from(s.size)).sum();
    let negative_cts = samples.iter().any(|s| s.cts < 0);
    let count = u32::try_from(samples.len()).map_err(|_| SegmentError::TooLarge)?;
    let mut head = Vec::with_capacity(256usize.saturating_add(samples.len().saturating_mul(24)));
    write_box(&mut head, STYP, |o| {
        o.extend_from_slice(b"msdh");
        o.put_u32(0);
        for brand in [b"msdh", b"msix", b"cmfs"] {
            o.extend_from_slice(brand);
        }
    });
    let moof_start = head.len();
    let mut data_offset_at = 0usize;
    let mut saio_offset_at = None;
    let mut senc_records_at = 0usize;
    write_box(&mut head, MOOF, |o| {
        write_full_box(o, MFHD, 0, 0, |o| o.put_u32(sequence));
        write_box(o, TRAF, |o| {
            let sdi_flag = if opts.sample_description_index.is_some() { TFHD_SAMPLE_DESCRIPTION_INDEX } else { 0 };
            write_full_box(o, TFHD, 0, TFHD_DEFAULT_BASE_IS_MOOF | sdi_flag, |o| {
                o.put_u32(track_id);
                if let Some(sdi) = opts.sample_description_index {
                    o.put_u32(sdi);
                }
            });
            write_full_box(o, TFDT, 1, 0, |o| o.put_u64(base_decode_time));
            write_full_box(o, TRUN, u8::from(negative_cts), TRUN_FLAGS, |o| {
                o.put_u32(count);
                data_offset_at = o.len();
                o.put_i32(0);
                for s in samples {
                    o.put_u32(s.duration);
                    o.put_u32(s.size);
                    o.put_u32(if s.sync { SYNC_FLAGS } else { NON_SYNC_FLAGS });
                    o.put_i32(s.cts);
                }
            });
            if let Some(aux) = &opts.aux {
                write_encryption_boxes(o, count, aux, &mut saio_offset_at, &mut senc_records_at);
            }
        });
    });
    let moof_len = head.len().saturating_sub(moof_start);
    // data_offset is relative to the moof start: past the moof and the 8-byte mdat header.
    let data_offset = i32::try_from(moof_len.saturating_add(8)).map_err(|_| SegmentError::TooLarge)?;
    patch_u32(&mut head, data_offset_at, data_offset.to_be_bytes());
    if let Some(at) = saio_offset_at {
        // saio points at the first per-sample record of senc, relative to the moof start.
        let rel = u32::try_from(senc_records_at.saturating_sub(moof_start)).map_err(|_| SegmentError::TooLarge)?;
        patch_u32(&mut head, at, rel.to_be_bytes());
    }
    let mdat_size = u32::try_from(data_len.saturating_add(8)).map_err(|_| SegmentError::TooLarge)?;
    head.put_u32(mdat_size);
    head.extend_from_slice(&MDAT.0);
    Ok(head)
}

/// `saiz`, `saio`, `senc` (in that order, senc last: spec-notes §1.4). `saiz`/`saio` are left
/// out when no sample has auxiliary data (cbcs audio), as shaka-packager does.
fn write_encryption_boxes(
    o: &mut Vec<u8>,
    count: u32,
    aux: &SampleAux<'_>,
    saio_offset_at: &mut Option<usize>,
    senc_records_at: &mut usize,
) {
    let with_subsamples = aux.subsamples.iter().any(|s| !s.is_empty());
    let iv_size = if aux.ivs.is_empty() { 0 } else { 8usize };
    let sizes: Vec<u8> = (0..count as usize)
        .map(|i| {
            let subs = if with_subsamples {
                aux.subsamples.get(i).map_or(0, Vec::len).saturating_mul(6).saturating_add(2)
            } else {
                0
            };
            u8::try_from(iv_size.saturating_add(subs)).unwrap_or(u8::MAX)
        })
        .collect();
    if sizes.iter().any(|&s| s > 0) {
        write_full_box(o, SAIZ, 0, 0, |o| {
            let first = sizes.first().copied().unwrap_or(0);
            if sizes.iter().all(|&s| s == first) {
                o.push(first);
                o.put_u32(count);
            } else {
                o.push(0);
                o.put_u32(count);
                o.extend_from_slice(&sizes);
            }
        });
        write_full_box(o, SAIO, 0, 0, |o| {
            o.put_u32(1);
            *saio_offset_at = Some(o.len());
            o.put_u32(0);
        });
    }
    write_full_box(o, SENC, 0, if with_subsamples { SENC_SUBSAMPLES } else { 0 }, |o| {
        o.put_u32(count);
        *senc_records_at = o.len();
        for i in 0..count as usize {
            if let Some(iv) = aux.ivs.get(i) {
                o.extend_from_slice(iv);
            }
            if with_subsamples {
                let subs = aux.subsamples.get(i).map_or(&[][..], Vec::as_slice);
                o.put_u16(u16::try_from(subs.len()).unwrap_or(u16::MAX));
                for s in subs {
                    o.put_u16(s.clear);
                    o.put_u32(s.protected);
                }
            }
        }
    });
}

fn patch_u32(buf: &mut [u8], at: usize, value: [u8; 4]) {
    if let Some(slot) = buf.get_mut(at..at.saturating_add(4)) {
        slot.copy_from_slice(&value);
    }
}

/// A clear media segment of `samples`, numbered `sequence`: the header, then the
/// sample bytes as views of `file` (adjacent samples coalesced into one view).
pub fn media_segment(
    sequence: u32,
    base_decode_time: u64,
    samples: &[Sample],
    file: &Source,
) -> Result<Vec<Bytes>, SegmentError> {
    let head = segment_header(OUTPUT_TRACK_ID, sequence, base_decode_time, samples, &FragmentOptions::default())?;
    let mut chunks = vec![Bytes::from(head)];
    for (offset, len) in runs(samples) {
        chunks.push(file.body(offset, len).ok_or(SegmentError::SampleOutOfFile { offset, size: len })?);
    }
    Ok(chunks)
}

/// Contiguous byte runs `(offset, len)` covering `samples` in order.
pub fn runs(samples: &[Sample]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for s in samples {
        let size = u64::from(s.size);
        match out.last_mut() {
            Some((start, len)) if start.saturating_add(*len) == s.offset => *len = len.saturating_add(size),
            _ => out.push((s.offset, size)),
        }
    }
    out
}
