//! `moov` (ISO/IEC 14496-12 §8.2–§8.8): tracks, their codec, timing and (for progressive files)
//! their sample tables.

use super::codes::*;
use super::error::{Error, Result};
use super::reader::{self, Reader};
use super::sample_entry::{parse_stsd, SampleEntry};
use super::{FourCC, Sample};

/// Upper bound on samples per track; a hostile `stsz` cannot make us allocate more.
pub const MAX_SAMPLES: usize = 5_000_000;

/// The movie: header, tracks and fragment defaults.
#[derive(Debug)]
pub struct Movie<'a> {
    /// Whole `mvhd` box (copied into init segments: edit lists are in its timescale).
    pub mvhd: &'a [u8],
    /// Tracks in file order.
    pub tracks: Vec<Track<'a>>,
    /// Whether `mvex` is present (the file is fragmented).
    pub fragmented: bool,
    /// Tracks left out, with the reason (e.g. an unsupported codec).
    pub skipped: Vec<String>,
}

/// Per-track defaults for fragments (`trex`, §8.8.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trex {
    /// Default sample description index.
    pub sample_description_index: u32,
    /// Default duration.
    pub duration: u32,
    /// Default size.
    pub size: u32,
    /// Default flags.
    pub flags: u32,
}

/// One `trak`.
#[derive(Debug)]
pub struct Track<'a> {
    /// `tkhd.track_ID`.
    pub id: u32,
    /// `hdlr.handler_type` (`vide`, `soun`, `text`, `subt` …).
    pub handler: FourCC,
    /// `mdhd.timescale`.
    pub timescale: u32,
    /// `mdhd.language` as ISO 639-2/T, e.g. `eng` (`und` when unset).
    pub language: String,
    /// Codec description (first sample entry).
    pub entry: SampleEntry,
    /// Media time of the first non-empty edit (0 without an edit list).
    pub edit_media_time: i64,
    /// Whole boxes copied verbatim into the CMAF init segment.
    pub raw: TrackBoxes<'a>,
    /// Fragment defaults from `mvex/trex`.
    pub trex: Trex,
    /// Samples from the sample tables (empty for a fragmented file's moov).
    pub samples: Vec<Sample>,
}

/// Whole boxes of a track that an init segment reuses unchanged.
#[derive(Debug, Clone, Copy)]
pub struct TrackBoxes<'a> {
    /// `tkhd`.
    pub tkhd: &'a [u8],
    /// `edts`, if any.
    pub edts: Option<&'a [u8]>,
    /// `mdhd`.
    pub mdhd: &'a [u8],
    /// `hdlr` (of `mdia`).
    pub hdlr: &'a [u8],
    /// `vmhd` / `smhd` / `sthd` / `nmhd`, if any.
    pub media_header: Option<&'a [u8]>,
    /// `stsd`.
    pub stsd: &'a [u8],
}

/// Parses a `moov` body. `file_len` bounds sample offsets and counts.
pub fn parse_moov(moov: &[u8], file_len: u64) -> Result<Movie<'_>> {
    let mvhd = reader::require(moov, MOOV, MVHD)?.whole(moov);
    let mut trexes = Vec::new();
    let mut fragmented = false;
    if let Some(mvex) = reader::find(moov, MOOV, MVEX)? {
        fragmented = true;
        for b in reader::boxes(mvex.body, MVEX) {
            let b = b?;
            if b.kind == TREX {
                let mut r = Reader::new(b.body, TREX);
                r.full_header()?;
                let id = r.u32()?;
                let t =
                    Trex { sample_description_index: r.u32()?, duration: r.u32()?, size: r.u32()?, flags: r.u32()? };
                trexes.push((id, t));
            }
        }
    }
    let mut tracks = Vec::new();
    let mut skipped = Vec::new();
    for b in reader::boxes(moov, MOOV) {
        let b = b?;
        if b.kind == TRAK {
            let mut t = match parse_trak(b.body, file_len, fragmented) {
                Ok(t) => t,
                // A track we cannot describe is left out; the others are still served.
                Err(Error::Unsupported(why)) => {
                    skipped.push(why);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some((_, trex)) = trexes.iter().find(|(id, _)| *id == t.id) {
                t.trex = *trex;
            }
            tracks.push(t);
        }
    }
    if tracks.is_empty() {
        return Err(skipped.pop().map_or(Error::Missing(TRAK), Error::Unsupported));
    }
    Ok(Movie { mvhd, tracks, fragmented, skipped })
}

fn parse_trak(trak: &[u8], file_len: u64, fragmented: bool) -> Result<Track<'_>> {
    let tkhd_box = reader::require(trak, TRAK, TKHD)?;
    let mut r = Reader::new(tkhd_box.body, TKHD);
    let (version, _) = r.full_header()?;
    r.uint_v(version)?; // creation_time
    r.uint_v(version)?; // modification_time
    let id = r.u32()?;
    if id == 0 {
        return Err(r.invalid("track_ID 0"));
    }
    let edts = reader::find(trak, TRAK, EDTS)?;
    let edit_media_time = match edts {
        Some(e) => first_media_time(e.body)?,
        None => 0,
    };
    let mdia = reader::require(trak, TRAK, MDIA)?;
    let mdhd_box = reader::require(mdia.body, MDIA, MDHD)?;
    let mut r = Reader::new(mdhd_box.body, MDHD);
    let (version, _) = r.full_header()?;
    r.uint_v(version)?;
    r.uint_v(version)?;
    let timescale = r.u32()?;
    if timescale == 0 {
        return Err(r.invalid("timescale 0"));
    }
    r.uint_v(version)?; // duration
    let language = decode_language(r.u16()?);
    let hdlr_box = reader::require(mdia.body, MDIA, HDLR)?;
    let mut r = Reader::new(hdlr_box.body, HDLR);
    r.full_header()?;
    r.u32()?;
    let handler = r.fourcc()?;
    let minf = reader::require(mdia.body, MDIA, MINF)?;
    let mut media_header = None;
    for b in reader::boxes(minf.body, MINF) {
        let b = b?;
        if matches!(b.kind, VMHD | SMHD | STHD | NMHD) {
            media_header = Some(b.whole(minf.body));
        }
    }
    let stbl = reader::require(minf.body, MINF, STBL)?;
    let stsd_box = reader::require(stbl.body, STBL, STSD)?;
    let entry = parse_stsd(stsd_box.body)?;
    let samples = if fragmented { Vec::new() } else { super::stbl::samples(stbl.body, file_len)? };
    Ok(Track {
        id,
        handler,
        timescale,
        language,
        entry,
        edit_media_time,
        raw: TrackBoxes {
            tkhd: tkhd_box.whole(trak),
            edts: edts.map(|e| e.whole(trak)),
            mdhd: mdhd_box.whole(mdia.body),
            hdlr: hdlr_box.whole(mdia.body),
            media_header,
            stsd: stsd_box.whole(stbl.body),
        },
        trex: Trex::default(),
        samples,
    })
}

/// Media time of the first edit that is not an empty edit (§8.6.6).
fn first_media_time(edts: &[u8]) -> Result<i64> {
    let Some(elst) = reader::find(edts, EDTS, ELST)? else {
        return Ok(0);
    };
    let mut r = Reader::new(elst.body, ELST);
    let (version, _) = r.full_header()?;
    let count = r.u32()?;
    for _ in 0..count {
        let (_duration, media_time) =
            if version == 1 { (r.u64()?, r.i64()?) } else { (u64::from(r.u32()?), i64::from(r.i32()?)) };
        r.skip(4)?; // media_rate
        if media_time >= 0 {
            return Ok(media_time);
        }
    }
    Ok(0)
}

/// ISO 639-2/T packed as three 5-bit letters (§8.4.2.3).
fn decode_language(packed: u16) -> String {
    let letters = [(packed >> 10) & 0x1f, (packed >> 5) & 0x1f, packed & 0x1f];
    if letters.iter().any(|&l| l == 0 || l > 26) {
        return "und".to_owned();
    }
    letters.iter().map(|&l| char::from(b'a'.saturating_add(l as u8).saturating_sub(1))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_codes() {
        // 'eng' = e(5) n(14) g(7)
        assert_eq!(decode_language((5 << 10) | (14 << 5) | 7), "eng");
        assert_eq!(decode_language(0), "und");
    }
}
