//! `cbcs`: AES-128-CBC with a crypt:skip pattern and the IV reset at every subsample. (Stub.)

use super::{Error, Key, Subsample};

/// Encrypts `sample` in place. With subsamples, each protected range starts from `iv` and is
/// encrypted in the `crypt:skip` block pattern (1:9 for video); without subsamples the whole
/// sample is one range. `crypt == 0 && skip == 0` means every full block (audio). A trailing
/// partial block always stays clear.
pub fn encrypt_sample(
    key: &Key,
    iv: &[u8; 16],
    sample: &mut [u8],
    subsamples: &[Subsample],
    crypt: u8,
    skip: u8,
) -> Result<(), Error> {
    let _ = (key, iv, sample, subsamples, crypt, skip);
    Ok(())
}
