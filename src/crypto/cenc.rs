//! `cenc`: AES-128-CTR with a 64-bit block counter. (Stub: being implemented.)

use super::{Error, Key, Subsample};

/// Encrypts `sample` in place: the protected ranges of `subsamples` (or the whole sample when the
/// list is empty) as one continuous CTR keystream starting at counter block `iv ‖ 0^64`.
pub fn encrypt_sample(
    key: &Key,
    iv: &[u8; 8],
    sample: &mut [u8],
    subsamples: &[Subsample],
) -> Result<(), Error> {
    let _ = (key, iv, sample, subsamples);
    Ok(())
}
