//! Video bitstream knowledge needed to protect NAL-structured samples (AVC, HEVC): which bytes of
//! a sample must stay clear (NAL length + header, slice header, non-VCL NALs) and which may be
//! encrypted, as [`crate::crypto::Subsample`] maps for `cenc` and `cbcs` (spec-notes §2.1–§2.3).
//!
//! Input: the sample entry's `avcC`/`hvcC` body and the samples (length-prefixed NAL units).
//! Output: one subsample map per sample that sums exactly to the sample size.
//!
//! * `bits`: RBSP bit reader over escaped bytes (exp-Golomb, emulation prevention).
//! * `avc`: avcC, SPS/PPS, slice_header() (H.264 §7.3.3).
//! * `hevc`, `hevc_ps`: hvcC, SPS/PPS, slice_segment_header() (H.265 §7.3.6.1).
//! * `map`: NAL walk and the clear/protected bookkeeping (cenc alignment, u16 splits).
//!
//! The slice header is parsed to its last bit: its size in escaped bytes (emulation prevention
//! bytes inside it counted, a partial last byte rounded up) is what stays clear after the NAL
//! header. Tests compare the result with Shaka Packager's maps and FFmpeg's slice header parser
//! for the sample assets and a set of small clips (`oracle` tests, `scripts/extract-*.py`).
//!
//! Left clear on purpose: AVC data partitions (types 2–4), HEVC reserved VCL types and slices of
//! layers above 0 (MV-HEVC/SHVC headers differ, Annex F). Not supported (an error): HEVC weighted
//! prediction together with the SCC current-picture reference, and a PPS SCC extension behind
//! multilayer/3D extensions.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

mod avc;
mod bits;
mod hevc;
mod hevc_ps;
mod map;

#[cfg(test)]
mod avc_tests;
#[cfg(test)]
mod hevc_tests;
#[cfg(test)]
mod oracle;
#[cfg(test)]
mod robustness;
#[cfg(test)]
mod testutil;

use crate::crypto::Subsample;

/// Internal parse result: the reason is a static string, wrapped into [`Error`] by the caller
/// that knows whether a configuration record or a sample was being read.
type Parse<T> = Result<T, &'static str>;

/// Errors of the bitstream layer.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum Error {
    /// The decoder configuration record (avcC/hvcC) is malformed or unsupported.
    #[error("decoder configuration: {0}")]
    Config(&'static str),
    /// A sample's NAL units or slice header could not be parsed.
    #[error("sample bitstream: {0}")]
    Bitstream(&'static str),
}

/// Which scheme a subsample map is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// AES-CTR: protected ranges are multiples of 16 bytes, the residual joins the leading clear.
    Cenc,
    /// AES-CBC 1:9: protected range starts right after the slice header, not rounded.
    Cbcs,
}

/// Parsed parameter sets of one track, enough to find the end of every slice header.
#[derive(Debug, Clone)]
pub struct NalContext {
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Avc(avc::Avc),
    Hevc(hevc::Hevc),
}

impl NalContext {
    /// From the sample entry's `avcC` body (the AVCDecoderConfigurationRecord).
    pub fn from_avcc(avcc: &[u8]) -> Result<NalContext, Error> {
        let ctx = avc::Avc::from_avcc(avcc).map_err(Error::Config)?;
        Ok(NalContext { inner: Inner::Avc(ctx) })
    }

    /// From the sample entry's `hvcC` body (the HEVCDecoderConfigurationRecord).
    pub fn from_hvcc(hvcc: &[u8]) -> Result<NalContext, Error> {
        let ctx = hevc::Hevc::from_hvcc(hvcc).map_err(Error::Config)?;
        Ok(NalContext { inner: Inner::Hevc(ctx) })
    }

    /// The subsample map of one sample (length-prefixed NAL units). In-band SPS/PPS update the
    /// context, hence `&mut self`: feed samples in decode order when a stream changes its
    /// parameter sets in band (`avc3`/`hev1`).
    ///
    /// The map covers the whole sample; a sample without any protectable slice data yields a
    /// single clear-only entry (an empty sample yields an empty map).
    pub fn subsamples(&mut self, sample: &[u8], scheme: Scheme) -> Result<Vec<Subsample>, Error> {
        let result = match &mut self.inner {
            Inner::Avc(ctx) => {
                let length_size = ctx.length_size;
                map::build(sample, length_size, scheme, |nal| ctx.clear_len(nal))
            }
            Inner::Hevc(ctx) => {
                let length_size = ctx.length_size;
                map::build(sample, length_size, scheme, |nal| ctx.clear_len(nal))
            }
        };
        result.map_err(Error::Bitstream)
    }
}
