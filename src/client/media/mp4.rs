//! Protected CMAF → clear fMP4, in place and size-preserving (ISO/IEC 23001-7, 14496-12):
//! * init segment: each `encv`/`enca` sample entry takes back the format of its `frma`, its
//!   `sinf` and every `pssh` become `free` boxes;
//! * media segment: each sample is decrypted where it lies in `mdat` (cenc: AES-CTR with the
//!   64-bit counter, one keystream per sample across its protected ranges; cbcs: AES-CBC in the
//!   crypt:skip pattern, chain restarted at each subsample, partial blocks clear), and
//!   `senc`/`saiz`/`saio`/`sbgp`/`sgpd`/`pssh` become `free`.
//!
//! Renaming to `free` instead of cutting keeps every offset (trun data offsets, sidx) valid, so
//! nothing else needs rewriting; `free` may appear in any container (14496-12 §8.1.2).
//! Box walking is bounded: every read goes through `mp4::reader`.
//!
//! HLS `METHOD=AES-128` is whole-segment AES-128-CBC with PKCS#7 ([`aes128_segment`]).

use aes::cipher::{BlockCipherDecrypt, KeyInit, KeyIvInit, StreamCipher};
use aes::Aes128;

use super::super::ClientError;
use crate::crypto::{Key, KeyId};
use crate::mp4::reader::{boxes, Reader};
use crate::mp4::FourCC;

const FREE: [u8; 4] = *b"free";

/// How one track is protected (its `tenc`) and its `trex` defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackCrypto {
    /// `tkhd` track id.
    pub track_id: u32,
    /// `cenc` or `cbcs`.
    pub scheme: [u8; 4],
    /// `default_KID`.
    pub kid: KeyId,
    /// `default_Per_Sample_IV_Size` (0: constant IV).
    pub iv_size: u8,
    /// `default_constant_IV`.
    pub constant_iv: Vec<u8>,
    /// Pattern (cbcs).
    pub crypt: u8,
    /// Pattern (cbcs).
    pub skip: u8,
    /// `trex` default sample size.
    pub default_size: u32,
}

fn bad(what: impl Into<String>) -> ClientError {
    ClientError::Media(what.into())
}

fn mp4err(e: crate::mp4::Error) -> ClientError {
    bad(e.to_string())
}

/// Children of `buf[start..end]`: (type, absolute header offset, absolute body offset, end).
fn children(buf: &[u8], start: usize, end: usize) -> Result<Vec<(FourCC, usize, usize, usize)>, ClientError> {
    let slice = buf.get(start..end).ok_or_else(|| bad("box outside the file"))?;
    let mut out = Vec::new();
    for b in boxes(slice, FourCC(*b"root")) {
        let b = b.map_err(mp4err)?;
        let h = start.saturating_add(b.offset);
        let body = h.saturating_add(b.header_len);
        out.push((b.kind, h, body, body.saturating_add(b.body.len())));
    }
    Ok(out)
}

fn rename(buf: &mut [u8], header: usize, to: [u8; 4]) {
    if let Some(t) = buf.get_mut(header.saturating_add(4)..header.saturating_add(8)) {
        t.copy_from_slice(&to);
    }
}

fn find(list: &[(FourCC, usize, usize, usize)], kind: &[u8; 4]) -> Option<(usize, usize, usize)> {
    list.iter().find(|(k, ..)| k.0 == *kind).map(|(_, h, b, e)| (*h, *b, *e))
}

fn body<'a>(buf: &'a [u8], b: usize, e: usize, kind: &[u8; 4]) -> Result<Reader<'a>, ClientError> {
    Ok(Reader::new(buf.get(b..e).ok_or_else(|| bad("box outside the file"))?, FourCC(*kind)))
}

/// Rewrites an init segment in clear and returns how each protected track is protected.
pub fn clear_init(init: &[u8]) -> Result<(Vec<u8>, Vec<TrackCrypto>), ClientError> {
    let mut out = init.to_vec();
    let top = children(init, 0, init.len())?;
    let (_, mb, me) = find(&top, b"moov").ok_or_else(|| bad("init segment without moov"))?;
    let moov = children(init, mb, me)?;
    let mut defaults = std::collections::BTreeMap::new();
    if let Some((_, xb, xe)) = find(&moov, b"mvex") {
        for (k, _, b, e) in children(init, xb, xe)? {
            if k.0 == *b"trex" {
                let mut r = body(init, b, e, b"trex")?;
                r.full_header().map_err(mp4err)?;
                let id = r.u32().map_err(mp4err)?;
                r.skip(8).map_err(mp4err)?;
                defaults.insert(id, r.u32().map_err(mp4err)?);
            }
        }
    }
    let mut tracks = Vec::new();
    for (k, h, b, e) in moov {
        if k.0 == *b"pssh" {
            rename(&mut out, h, FREE);
        }
        if k.0 != *b"trak" {
            continue;
        }
        let trak = children(init, b, e)?;
        let (_, tb, te) = find(&trak, b"tkhd").ok_or_else(|| bad("trak without tkhd"))?;
        let mut r = body(init, tb, te, b"tkhd")?;
        let (version, _) = r.full_header().map_err(mp4err)?;
        r.skip(if version == 1 { 16 } else { 8 }).map_err(mp4err)?;
        let track_id = r.u32().map_err(mp4err)?;
        let mut path = (b, e);
        for kind in [b"mdia", b"minf", b"stbl", b"stsd"] {
            let list = children(init, path.0, path.1)?;
            let (_, cb, ce) = find(&list, kind).ok_or_else(|| bad(format!("trak without {}", FourCC(*kind))))?;
            path = (cb, ce);
        }
        // stsd: full header + entry count, then sample entries.
        let entries = children(init, path.0.saturating_add(8), path.1)?;
        for (ek, eh, eb, ee) in entries {
            let fixed = match &ek.0 {
                b"encv" => 78,
                b"enca" => 28,
                _ => continue,
            };
            let inner = children(init, eb.saturating_add(fixed), ee)?;
            let (sh, sb, se) = find(&inner, b"sinf").ok_or_else(|| bad("protected sample entry without sinf"))?;
            let sinf = children(init, sb, se)?;
            let (_, fb, fe) = find(&sinf, b"frma").ok_or_else(|| bad("sinf without frma"))?;
            let original = body(init, fb, fe, b"frma")?.fourcc().map_err(mp4err)?;
            let (_, kb, ke) = find(&sinf, b"schm").ok_or_else(|| bad("sinf without schm"))?;
            let mut r = body(init, kb, ke, b"schm")?;
            r.full_header().map_err(mp4err)?;
            let scheme = r.fourcc().map_err(mp4err)?.0;
            if scheme != *b"cenc" && scheme != *b"cbcs" {
                return Err(bad(format!("scheme {} is not supported", FourCC(scheme))));
            }
            let (_, ib, ie) = find(&sinf, b"schi").ok_or_else(|| bad("sinf without schi"))?;
            let schi = children(init, ib, ie)?;
            let (_, nb, ne) = find(&schi, b"tenc").ok_or_else(|| bad("schi without tenc"))?;
            let mut r = body(init, nb, ne, b"tenc")?;
            let (tv, _) = r.full_header().map_err(mp4err)?;
            r.u8().map_err(mp4err)?;
            let pattern = r.u8().map_err(mp4err)?;
            let (crypt, skip) = if tv >= 1 { (pattern >> 4, pattern & 0x0f) } else { (0, 0) };
            let protected = r.u8().map_err(mp4err)?;
            let iv_size = r.u8().map_err(mp4err)?;
            let kid: [u8; 16] = r.bytes(16).map_err(mp4err)?.try_into().map_err(|_| bad("tenc KID"))?;
            let constant_iv = if protected == 1 && iv_size == 0 {
                let n = r.u8().map_err(mp4err)?;
                r.bytes(usize::from(n)).map_err(mp4err)?.to_vec()
            } else {
                Vec::new()
            };
            rename(&mut out, eh, original.0);
            rename(&mut out, sh, FREE);
            tracks.push(TrackCrypto {
                track_id,
                scheme,
                kid: KeyId(kid),
                iv_size,
                constant_iv,
                crypt,
                skip,
                default_size: defaults.get(&track_id).copied().unwrap_or(0),
            });
        }
    }
    Ok((out, tracks))
}

/// Decrypts every protected sample of a media segment in place and neutralises its
/// encryption boxes. `key` gives the key of a KID.
pub fn clear_segment(
    seg: &[u8],
    tracks: &[TrackCrypto],
    key: &dyn Fn(&KeyId) -> Option<Key>,
) -> Result<Vec<u8>, ClientError> {
    let mut out = seg.to_vec();
    for (k, mh, mb, me) in children(seg, 0, seg.len())? {
        if k.0 != *b"moof" {
            continue;
        }
        for (tk, th, tb, te) in children(seg, mb, me)? {
            if tk.0 == *b"pssh" {
                rename(&mut out, th, FREE);
            }
            if tk.0 == *b"traf" {
                clear_traf(seg, &mut out, mh, tb, te, tracks, key)?;
            }
        }
    }
    Ok(out)
}

struct SampleRange {
    start: usize,
    len: usize,
}

#[allow(clippy::too_many_arguments)]
fn clear_traf(
    seg: &[u8],
    out: &mut [u8],
    moof: usize,
    tb: usize,
    te: usize,
    tracks: &[TrackCrypto],
    key: &dyn Fn(&KeyId) -> Option<Key>,
) -> Result<(), ClientError> {
    let traf = children(seg, tb, te)?;
    let (_, hb, he) = find(&traf, b"tfhd").ok_or_else(|| bad("traf without tfhd"))?;
    let mut r = body(seg, hb, he, b"tfhd")?;
    let (_, flags) = r.full_header().map_err(mp4err)?;
    let track_id = r.u32().map_err(mp4err)?;
    let mut base = moof;
    if flags & 0x1 != 0 {
        base = usize::try_from(r.u64().map_err(mp4err)?).map_err(|_| bad("base data offset"))?;
    }
    if flags & 0x2 != 0 {
        r.u32().map_err(mp4err)?;
    }
    if flags & 0x8 != 0 {
        r.u32().map_err(mp4err)?;
    }
    let Some(t) = tracks.iter().find(|t| t.track_id == track_id) else { return Ok(()) };
    let default_size = if flags & 0x10 != 0 { r.u32().map_err(mp4err)? } else { t.default_size };
    // Where each sample lies.
    let mut samples = Vec::new();
    let mut pos = base;
    for (k, _, b, e) in &traf {
        if k.0 != *b"trun" {
            continue;
        }
        let mut r = body(seg, *b, *e, b"trun")?;
        let (_, f) = r.full_header().map_err(mp4err)?;
        let count = r.u32().map_err(mp4err)?;
        if f & 0x1 != 0 {
            let off = r.i32().map_err(mp4err)?;
            pos = usize::try_from(i64::try_from(base).unwrap_or(i64::MAX).saturating_add(i64::from(off)))
                .map_err(|_| bad("trun data offset"))?;
        }
        if f & 0x4 != 0 {
            r.u32().map_err(mp4err)?;
        }
        let per = [0x100u32, 0x200, 0x400, 0x800].iter().filter(|b| f & **b != 0).count().saturating_mul(4);
        let count = r.check_count(count, per).map_err(mp4err)?;
        for _ in 0..count {
            if f & 0x100 != 0 {
                r.u32().map_err(mp4err)?;
            }
            let size = if f & 0x200 != 0 { r.u32().map_err(mp4err)? } else { default_size };
            if f & 0x400 != 0 {
                r.u32().map_err(mp4err)?;
            }
            if f & 0x800 != 0 {
                r.u32().map_err(mp4err)?;
            }
            let len = usize::try_from(size).map_err(|_| bad("sample size"))?;
            // A trun without per-sample fields costs no bytes per sample, so its count is bounded
            // only here: every sample must lie in the segment, and there cannot be more samples
            // than bytes (empty samples included), or a 4-byte count would allocate gigabytes.
            if pos.checked_add(len).is_none_or(|end| end > seg.len()) {
                return Err(bad("sample outside the segment"));
            }
            if samples.len() >= seg.len() {
                return Err(bad("more samples than bytes in the segment"));
            }
            samples.push(SampleRange { start: pos, len });
            pos = pos.saturating_add(len);
        }
    }
    let k = key(&t.kid).ok_or_else(|| ClientError::refused("no_key", format!("no key for KID {}", t.kid)))?;
    let (_, sb, se) = find(&traf, b"senc").ok_or_else(|| bad("protected traf without senc"))?;
    let mut r = body(seg, sb, se, b"senc")?;
    let (_, sflags) = r.full_header().map_err(mp4err)?;
    let count = usize::try_from(r.u32().map_err(mp4err)?).map_err(|_| bad("senc count"))?;
    if count != samples.len() {
        return Err(bad(format!("senc has {count} entries for {} samples", samples.len())));
    }
    for s in &samples {
        let iv: Vec<u8> = if t.iv_size > 0 {
            r.bytes(usize::from(t.iv_size)).map_err(mp4err)?.to_vec()
        } else {
            t.constant_iv.clone()
        };
        let mut subs = Vec::new();
        if sflags & 0x2 != 0 {
            let n = r.u16().map_err(mp4err)?;
            let n = r.check_count(u32::from(n), 6).map_err(mp4err)?;
            for _ in 0..n {
                subs.push((
                    usize::from(r.u16().map_err(mp4err)?),
                    usize::try_from(r.u32().map_err(mp4err)?).unwrap_or(usize::MAX),
                ));
            }
        }
        let end = s.start.checked_add(s.len).ok_or_else(|| bad("sample past the end"))?;
        let sample = out.get_mut(s.start..end).ok_or_else(|| bad("sample outside the segment"))?;
        let ranges = protected_ranges(sample.len(), &subs)?;
        match &t.scheme {
            b"cenc" => cenc(&k, &iv, sample, &ranges)?,
            _ => cbcs(&k, &iv, sample, &ranges, t.crypt, t.skip)?,
        }
    }
    for (k, h, ..) in &traf {
        if matches!(&k.0, b"senc" | b"saiz" | b"saio" | b"sbgp" | b"sgpd") {
            rename(out, *h, FREE);
        }
    }
    Ok(())
}

/// The protected byte ranges of a sample (the whole sample without subsamples).
fn protected_ranges(len: usize, subs: &[(usize, usize)]) -> Result<Vec<(usize, usize)>, ClientError> {
    if subs.is_empty() {
        return Ok(vec![(0, len)]);
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    for (clear, prot) in subs {
        let start = pos.checked_add(*clear).ok_or_else(|| bad("subsamples overflow"))?;
        let end = start.checked_add(*prot).ok_or_else(|| bad("subsamples overflow"))?;
        out.push((start, end));
        pos = end;
    }
    if pos != len {
        return Err(bad(format!("subsamples cover {pos} bytes of a {len}-byte sample")));
    }
    Ok(out)
}

fn iv16(iv: &[u8]) -> Result<[u8; 16], ClientError> {
    let mut b = [0u8; 16];
    match iv.len() {
        8 => b.get_mut(..8).ok_or_else(|| bad("iv"))?.copy_from_slice(iv),
        16 => b.copy_from_slice(iv),
        n => return Err(bad(format!("{n}-byte IV"))),
    }
    Ok(b)
}

fn cenc(key: &Key, iv: &[u8], sample: &mut [u8], ranges: &[(usize, usize)]) -> Result<(), ClientError> {
    let mut c = ctr::Ctr64BE::<Aes128>::new(key.bytes().into(), &iv16(iv)?.into());
    for (a, b) in ranges {
        let r = sample.get_mut(*a..*b).ok_or_else(|| bad("range"))?;
        c.try_apply_keystream(r).map_err(|_| bad("keystream exhausted"))?;
    }
    Ok(())
}

fn cbcs(
    key: &Key,
    iv: &[u8],
    sample: &mut [u8],
    ranges: &[(usize, usize)],
    crypt: u8,
    skip: u8,
) -> Result<(), ClientError> {
    let aes = Aes128::new(key.bytes().into());
    let iv = iv16(iv)?;
    let (crypt, skip) =
        if crypt == 0 || skip == 0 { (1usize, 0usize) } else { (usize::from(crypt), usize::from(skip)) };
    for (a, b) in ranges {
        let range = sample.get_mut(*a..*b).ok_or_else(|| bad("range"))?;
        let mut chain = iv;
        let full = range.len() / 16;
        for (i, block) in range.chunks_exact_mut(16).take(full).enumerate() {
            if i % (crypt + skip) >= crypt {
                continue;
            }
            let mut c = [0u8; 16];
            c.copy_from_slice(block);
            let mut arr = aes::Block::from(c);
            aes.decrypt_block(&mut arr);
            for ((o, p), x) in block.iter_mut().zip(arr.iter()).zip(chain.iter()) {
                *o = *p ^ *x;
            }
            chain = c;
        }
    }
    Ok(())
}

/// HLS AES-128: AES-128-CBC of the whole segment, PKCS#7 padding removed.
pub fn aes128_segment(key: &Key, iv: &[u8; 16], data: &[u8]) -> Result<Vec<u8>, ClientError> {
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return Err(bad("AES-128 segment is not a whole number of blocks"));
    }
    let aes = Aes128::new(key.bytes().into());
    let mut out = Vec::with_capacity(data.len());
    let mut chain = *iv;
    for block in data.chunks_exact(16) {
        let mut c = [0u8; 16];
        c.copy_from_slice(block);
        let mut arr = aes::Block::from(c);
        aes.decrypt_block(&mut arr);
        out.extend(arr.iter().zip(chain.iter()).map(|(p, x)| p ^ x));
        chain = c;
    }
    let pad = usize::from(out.last().copied().unwrap_or(0));
    let keep = out
        .len()
        .checked_sub(pad)
        .filter(|_| (1..=16).contains(&pad))
        .ok_or_else(|| bad("bad PKCS#7 padding (wrong key?)"))?;
    if !out.get(keep..).is_some_and(|t| t.iter().all(|b| usize::from(*b) == pad)) {
        return Err(bad("bad PKCS#7 padding (wrong key?)"));
    }
    out.truncate(keep);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::Subsample;

    #[test]
    fn cenc_and_cbcs_invert_the_origin_encryptors() {
        let key = Key::new([7u8; 16]);
        let clear: Vec<u8> = (0..300u32).map(|i| (i * 7 % 251) as u8).collect();
        let subs = [Subsample { clear: 5, protected: 160 }, Subsample { clear: 3, protected: 132 }];
        let ranges = protected_ranges(300, &[(5, 160), (3, 132)]).unwrap();
        let mut s = clear.clone();
        crate::crypto::cenc::encrypt_sample(&key, &[1, 2, 3, 4, 5, 6, 7, 8], &mut s, &subs).unwrap();
        assert_ne!(s, clear);
        cenc(&key, &[1, 2, 3, 4, 5, 6, 7, 8], &mut s, &ranges).unwrap();
        assert_eq!(s, clear);
        let iv = [9u8; 16];
        let mut s = clear.clone();
        crate::crypto::cbcs::encrypt_sample(&key, &iv, &mut s, &subs, 1, 9).unwrap();
        assert_ne!(s, clear);
        cbcs(&key, &iv, &mut s, &ranges, 1, 9).unwrap();
        assert_eq!(s, clear);
        let mut s = clear.clone();
        crate::crypto::cbcs::encrypt_sample(&key, &iv, &mut s, &[], 0, 0).unwrap();
        cbcs(&key, &iv, &mut s, &[(0, 300)], 0, 0).unwrap();
        assert_eq!(s, clear);
        let enc = crate::crypto::hls::encrypt_segment(&key, &iv, &clear);
        assert_eq!(aes128_segment(&key, &iv, &enc).unwrap(), clear);
        assert!(
            aes128_segment(&Key::new([8u8; 16]), &iv, &enc).is_err()
                || aes128_segment(&Key::new([8u8; 16]), &iv, &enc).unwrap() != clear
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut rng = 12345u64;
        for n in 0..300usize {
            let len = n % 97;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (rng >> 33) as u8
                })
                .collect();
            let _ = clear_init(&buf);
            let _ = clear_segment(&buf, &[], &|_| None);
        }
        assert!(protected_ranges(10, &[(5, 6)]).is_err());
    }
}
