//! `stsd` sample entries (ISO/IEC 14496-12 §8.5.2, 14496-15 §5.3/§8.3, 14496-14 §5.6):
//! what a manifest needs to know about a track's codec.

use super::codes::*;
use super::error::{Error, Result};
use super::reader::{self, Reader};
use super::FourCC;

/// Codec facts read from the first sample entry of a track.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleEntry {
    /// The entry's four-character code (`avc1`, `hvc1`, `mp4a`, `ac-3` …).
    pub format: FourCC,
    /// RFC 6381 codecs string (`avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`).
    pub codec: String,
    /// Video width in pixels (0 for audio).
    pub width: u16,
    /// Video height in pixels (0 for audio).
    pub height: u16,
    /// Audio channel count (0 for video).
    pub channels: u16,
    /// Audio sample rate in Hz (0 for video).
    pub sample_rate: u32,
    /// Body of the decoder configuration record (`avcC`/`hvcC`) for NAL-structured video, which
    /// the encryption path parses to find slice headers; empty otherwise.
    pub decoder_config: Vec<u8>,
}

/// Bytes of a VisualSampleEntry before its child boxes.
const VISUAL_FIELDS: usize = 78;

/// Parses the body of `stsd` (after version/flags) and describes its first entry.
pub fn parse_stsd(body: &[u8]) -> Result<SampleEntry> {
    let mut r = Reader::new(body, STSD);
    r.full_header()?;
    let count = r.u32()?;
    if count == 0 {
        return Err(r.invalid("no sample entry"));
    }
    let first = reader::boxes(r.rest(), STSD).next().ok_or(Error::Missing(STSD))??;
    parse_entry(first.kind, first.body)
}

fn parse_entry(format: FourCC, body: &[u8]) -> Result<SampleEntry> {
    let mut entry = SampleEntry {
        format,
        codec: String::new(),
        width: 0,
        height: 0,
        channels: 0,
        sample_rate: 0,
        decoder_config: Vec::new(),
    };
    match format {
        AVC1 | AVC3 | HVC1 | HEV1 => {
            let mut r = Reader::new(body, format);
            r.skip(24)?;
            entry.width = r.u16()?;
            entry.height = r.u16()?;
            let children = body.get(VISUAL_FIELDS..).ok_or(Error::Truncated(format))?;
            let (codec, config) = if format == AVC1 || format == AVC3 {
                let avcc = reader::require(children, format, AVCC)?.body;
                (avc_codec(format, avcc)?, avcc)
            } else {
                let hvcc = reader::require(children, format, HVCC)?.body;
                (hevc_codec(format, hvcc)?, hvcc)
            };
            entry.codec = codec;
            entry.decoder_config = config.to_vec();
        }
        MP4A | AC_3 | EC_3 => {
            let mut r = Reader::new(body, format);
            r.skip(8)?;
            let version = r.u16()?;
            r.skip(6)?;
            entry.channels = r.u16()?;
            r.skip(6)?;
            entry.sample_rate = r.u32()? >> 16;
            // QuickTime sound description versions 1 and 2 carry extra fields before the children.
            match version {
                0 => {}
                1 => r.skip(16)?,
                2 => r.skip(36)?,
                _ => return Err(r.invalid("unknown sound sample entry version")),
            }
            let children = r.rest();
            entry.codec = match format {
                MP4A => {
                    let esds = reader::require(children, format, ESDS)?;
                    let (codec, channels) = aac_codec(esds.body)?;
                    if let Some(c) = channels.filter(|&c| c > 0) {
                        entry.channels = c;
                    }
                    codec
                }
                AC_3 => "ac-3".to_owned(),
                _ => "ec-3".to_owned(),
            };
        }
        WVTT => entry.codec = "wvtt".to_owned(),
        STPP => entry.codec = "stpp.ttml.im1t".to_owned(),
        other => return Err(Error::Unsupported(format!("sample entry '{other}'"))),
    }
    Ok(entry)
}

/// `avc1.PPCCLL` from an AVCDecoderConfigurationRecord (14496-15 §5.3.3.1).
fn avc_codec(format: FourCC, avcc: &[u8]) -> Result<String> {
    let mut r = Reader::new(avcc, AVCC);
    let _version = r.u8()?;
    let (p, c, l) = (r.u8()?, r.u8()?, r.u8()?);
    Ok(format!("{format}.{p:02x}{c:02x}{l:02x}"))
}

/// `hvc1.A.B.TL.C` from an HEVCDecoderConfigurationRecord (14496-15 §8.3.3.1, Annex E).
fn hevc_codec(format: FourCC, hvcc: &[u8]) -> Result<String> {
    let mut r = Reader::new(hvcc, HVCC);
    let _version = r.u8()?;
    let b = r.u8()?;
    let space = match b >> 6 {
        0 => "",
        1 => "A",
        2 => "B",
        _ => "C",
    };
    let tier = if b & 0x20 != 0 { 'H' } else { 'L' };
    let profile = b & 0x1f;
    let compat = r.u32()?.reverse_bits();
    let constraints = r.bytes(6)?;
    let level = r.u8()?;
    let mut s = format!("{format}.{space}{profile}.{compat:X}.{tier}{level}");
    // Constraint bytes are written up to the last non-zero one.
    let used = constraints.iter().rposition(|&c| c != 0).map_or(0, |i| i.saturating_add(1));
    for c in constraints.iter().take(used) {
        s.push_str(&format!(".{c:X}"));
    }
    Ok(s)
}

/// `mp4a.40.AOT` (or `mp4a.OTI`) and the channel configuration from an `esds` (14496-1 §7.2.6).
fn aac_codec(esds: &[u8]) -> Result<(String, Option<u16>)> {
    let mut r = Reader::new(esds, ESDS);
    r.full_header()?;
    let mut oti = None;
    let mut asc: Option<&[u8]> = None;
    // Walk the descriptor tree: ES (3) contains DecoderConfig (4) contains DecoderSpecificInfo (5).
    while r.remaining() > 0 && asc.is_none() {
        let tag = r.u8()?;
        let len = descriptor_len(&mut r)?;
        match tag {
            3 => {
                r.skip(2)?;
                let flags = r.u8()?;
                if flags & 0x80 != 0 {
                    r.skip(2)?;
                }
                if flags & 0x40 != 0 {
                    let n = r.u8()?;
                    r.skip(usize::from(n))?;
                }
                if flags & 0x20 != 0 {
                    r.skip(2)?;
                }
            }
            4 => {
                oti = Some(r.u8()?);
                r.skip(12)?;
            }
            5 => asc = Some(r.bytes(len)?),
            _ => r.skip(len)?,
        }
    }
    let oti = oti.ok_or(Error::Invalid { kind: ESDS, reason: "no DecoderConfigDescriptor" })?;
    if oti != 0x40 {
        return Ok((format!("mp4a.{oti:02x}"), None));
    }
    let asc = asc.ok_or(Error::Invalid { kind: ESDS, reason: "no AudioSpecificConfig" })?;
    let mut bits = BitReader { data: asc, pos: 0 };
    let mut aot = bits.read(5).ok_or(Error::Truncated(ESDS))?;
    if aot == 31 {
        aot = 32u32.saturating_add(bits.read(6).ok_or(Error::Truncated(ESDS))?);
    }
    let freq_index = bits.read(4).ok_or(Error::Truncated(ESDS))?;
    if freq_index == 15 {
        bits.read(24).ok_or(Error::Truncated(ESDS))?;
    }
    let channels = bits.read(4).and_then(|c| u16::try_from(c).ok());
    Ok((format!("mp4a.40.{aot}"), channels))
}

fn descriptor_len(r: &mut Reader<'_>) -> Result<usize> {
    let mut len = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    Ok(len)
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl BitReader<'_> {
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            let bit = (byte >> (7 - (self.pos % 8) as u32)) & 1;
            v = (v << 1) | u32::from(bit);
            self.pos = self.pos.checked_add(1)?;
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avc_codec_string() {
        assert_eq!(avc_codec(AVC1, &[1, 0x64, 0x00, 0x1f, 0xff]).unwrap(), "avc1.64001f");
    }

    #[test]
    fn hevc_main_profile_codec_string() {
        // general_profile_idc 1, compat flags 0x60000000 (bits 1 and 2), level 93, constraint 0x90.
        let hvcc = [1, 0x01, 0x60, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 93];
        assert_eq!(hevc_codec(HVC1, &hvcc).unwrap(), "hvc1.1.6.L93.90");
    }

    #[test]
    fn aac_lc_codec_string() {
        // esds: ES_Descriptor{DecoderConfig{oti 0x40, DSI 0x12 0x10 = AAC-LC 44.1k stereo}}
        let esds =
            [0, 0, 0, 0, 3, 25, 0, 1, 0, 4, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 2, 0x12, 0x10, 6, 1, 2];
        assert_eq!(aac_codec(&esds).unwrap(), ("mp4a.40.2".to_owned(), Some(2)));
    }

    #[test]
    fn truncated_esds_is_an_error_not_a_panic() {
        for n in 0..20 {
            let esds = [0, 0, 0, 0, 3, 25, 0, 1, 0, 4, 17, 0x40, 0x15, 0, 0, 0, 0, 0, 0, 0];
            let _ = aac_codec(&esds[..n]);
        }
    }
}
