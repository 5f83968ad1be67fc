//! Four-character codes, printable in errors and logs.

use std::fmt;

/// A box type or sample-entry code, e.g. `moov`, `avc1`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FourCC(pub [u8; 4]);

impl FourCC {
    /// From a 4-byte string literal: `FourCC::new(b"moov")`.
    pub const fn new(code: &[u8; 4]) -> Self {
        FourCC(*code)
    }
}

impl fmt::Display for FourCC {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in &self.0 {
            // Hostile files carry any bytes here: print non-ASCII as '?' so logs stay readable.
            let c = if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for FourCC {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FourCC({self})")
    }
}

/// Box and sample-entry codes used by the crate.
pub mod codes {
    use super::FourCC;
    /// `ftyp` box.
    pub const FTYP: FourCC = FourCC(*b"ftyp");
    /// `styp` box.
    pub const STYP: FourCC = FourCC(*b"styp");
    /// `moov` box.
    pub const MOOV: FourCC = FourCC(*b"moov");
    /// `mvhd` box.
    pub const MVHD: FourCC = FourCC(*b"mvhd");
    /// `trak` box.
    pub const TRAK: FourCC = FourCC(*b"trak");
    /// `tkhd` box.
    pub const TKHD: FourCC = FourCC(*b"tkhd");
    /// `edts` box.
    pub const EDTS: FourCC = FourCC(*b"edts");
    /// `elst` box.
    pub const ELST: FourCC = FourCC(*b"elst");
    /// `mdia` box.
    pub const MDIA: FourCC = FourCC(*b"mdia");
    /// `mdhd` box.
    pub const MDHD: FourCC = FourCC(*b"mdhd");
    /// `hdlr` box.
    pub const HDLR: FourCC = FourCC(*b"hdlr");
    /// `minf` box.
    pub const MINF: FourCC = FourCC(*b"minf");
    /// `vmhd` box.
    pub const VMHD: FourCC = FourCC(*b"vmhd");
    /// `smhd` box.
    pub const SMHD: FourCC = FourCC(*b"smhd");
    /// `nmhd` box.
    pub const NMHD: FourCC = FourCC(*b"nmhd");
    /// `sthd` box.
    pub const STHD: FourCC = FourCC(*b"sthd");
    /// `dinf` box.
    pub const DINF: FourCC = FourCC(*b"dinf");
    /// `dref` box.
    pub const DREF: FourCC = FourCC(*b"dref");
    /// `stbl` box.
    pub const STBL: FourCC = FourCC(*b"stbl");
    /// `stsd` box.
    pub const STSD: FourCC = FourCC(*b"stsd");
    /// `stts` box.
    pub const STTS: FourCC = FourCC(*b"stts");
    /// `ctts` box.
    pub const CTTS: FourCC = FourCC(*b"ctts");
    /// `stss` box.
    pub const STSS: FourCC = FourCC(*b"stss");
    /// `stsc` box.
    pub const STSC: FourCC = FourCC(*b"stsc");
    /// `stsz` box.
    pub const STSZ: FourCC = FourCC(*b"stsz");
    /// `stz2` box.
    pub const STZ2: FourCC = FourCC(*b"stz2");
    /// `stco` box.
    pub const STCO: FourCC = FourCC(*b"stco");
    /// `co64` box.
    pub const CO64: FourCC = FourCC(*b"co64");
    /// `mvex` box.
    pub const MVEX: FourCC = FourCC(*b"mvex");
    /// `mehd` box.
    pub const MEHD: FourCC = FourCC(*b"mehd");
    /// `trex` box.
    pub const TREX: FourCC = FourCC(*b"trex");
    /// `moof` box.
    pub const MOOF: FourCC = FourCC(*b"moof");
    /// `mfhd` box.
    pub const MFHD: FourCC = FourCC(*b"mfhd");
    /// `traf` box.
    pub const TRAF: FourCC = FourCC(*b"traf");
    /// `tfhd` box.
    pub const TFHD: FourCC = FourCC(*b"tfhd");
    /// `tfdt` box.
    pub const TFDT: FourCC = FourCC(*b"tfdt");
    /// `trun` box.
    pub const TRUN: FourCC = FourCC(*b"trun");
    /// `mdat` box.
    pub const MDAT: FourCC = FourCC(*b"mdat");
    /// `sidx` box.
    pub const SIDX: FourCC = FourCC(*b"sidx");
    /// `free` box.
    pub const FREE: FourCC = FourCC(*b"free");
    /// `skip` box.
    pub const SKIP: FourCC = FourCC(*b"skip");
    /// `udta` box.
    pub const UDTA: FourCC = FourCC(*b"udta");
    /// `meta` box.
    pub const META: FourCC = FourCC(*b"meta");
    /// `mfra` box.
    pub const MFRA: FourCC = FourCC(*b"mfra");
    /// `avc1` box.
    pub const AVC1: FourCC = FourCC(*b"avc1");
    /// `avc3` box.
    pub const AVC3: FourCC = FourCC(*b"avc3");
    /// `hvc1` box.
    pub const HVC1: FourCC = FourCC(*b"hvc1");
    /// `hev1` box.
    pub const HEV1: FourCC = FourCC(*b"hev1");
    /// `mp4a` box.
    pub const MP4A: FourCC = FourCC(*b"mp4a");
    /// `avcC` box.
    pub const AVCC: FourCC = FourCC(*b"avcC");
    /// `hvcC` box.
    pub const HVCC: FourCC = FourCC(*b"hvcC");
    /// `esds` box.
    pub const ESDS: FourCC = FourCC(*b"esds");
    /// `wvtt` box.
    pub const WVTT: FourCC = FourCC(*b"wvtt");
    /// `stpp` box.
    pub const STPP: FourCC = FourCC(*b"stpp");
    /// `sinf` box.
    pub const SINF: FourCC = FourCC(*b"sinf");
    /// `encv` box.
    pub const ENCV: FourCC = FourCC(*b"encv");
    /// `enca` box.
    pub const ENCA: FourCC = FourCC(*b"enca");
    /// `pssh` box.
    pub const PSSH: FourCC = FourCC(*b"pssh");
    /// `dac3` box.
    pub const DAC3: FourCC = FourCC(*b"dac3");
    /// `dec3` box.
    pub const DEC3: FourCC = FourCC(*b"dec3");
    /// `btrt` box.
    pub const BTRT: FourCC = FourCC(*b"btrt");
    /// `saiz` box.
    pub const SAIZ: FourCC = FourCC(*b"saiz");
    /// `saio` box.
    pub const SAIO: FourCC = FourCC(*b"saio");
    /// `senc` box.
    pub const SENC: FourCC = FourCC(*b"senc");
    /// `frma` box.
    pub const FRMA: FourCC = FourCC(*b"frma");
    /// `schm` box.
    pub const SCHM: FourCC = FourCC(*b"schm");
    /// `schi` box.
    pub const SCHI: FourCC = FourCC(*b"schi");
    /// `tenc` box.
    pub const TENC: FourCC = FourCC(*b"tenc");
    /// `ac-3` sample entry (AC-3 audio).
    pub const AC_3: FourCC = FourCC(*b"ac-3");
    /// `ec-3` sample entry (E-AC-3 audio).
    pub const EC_3: FourCC = FourCC(*b"ec-3");
}
