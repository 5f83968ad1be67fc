//! Video bitstream knowledge needed to protect NAL-structured samples (AVC, HEVC): which bytes of
//! a sample must stay clear (NAL length + header, slice header, non-VCL NALs) and which may be
//! encrypted, as [`crate::crypto::Subsample`] maps for `cenc` and `cbcs`. (Stub: being written.)

use crate::crypto::Subsample;

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
    _private: (),
}

impl NalContext {
    /// From the sample entry's `avcC` body.
    pub fn from_avcc(avcc: &[u8]) -> Result<NalContext, Error> {
        let _ = avcc;
        Err(Error::Config("not implemented"))
    }

    /// From the sample entry's `hvcC` body.
    pub fn from_hvcc(hvcc: &[u8]) -> Result<NalContext, Error> {
        let _ = hvcc;
        Err(Error::Config("not implemented"))
    }

    /// The subsample map of one sample (length-prefixed NAL units). In-band SPS/PPS update the
    /// context, hence `&mut self`.
    pub fn subsamples(&mut self, sample: &[u8], scheme: Scheme) -> Result<Vec<Subsample>, Error> {
        let _ = (sample, scheme);
        Err(Error::Bitstream("not implemented"))
    }
}
