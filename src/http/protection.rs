//! What a request may be served under the asset's policy, and the keys it needs: shared by the
//! manifest and segment rooms.

use crate::drm::{Drm, Policy, Variant};
use crate::packaging::plan::Asset;
use crate::packaging::{protect, Protection};

use super::error::ServeError;

/// Whether `variant` may be served for this request under `policy`. Clear init segments (and
/// clear-lead segments) stay available when HLS AES-128 needs them: they carry no more than the
/// clear lead the policy itself grants.
pub(super) fn allowed(policy: &Policy, variant: Variant, clear_init_or_lead: bool) -> Result<(), ServeError> {
    if policy.offers(variant) {
        return Ok(());
    }
    if variant == Variant::Clear {
        if clear_init_or_lead && policy.hls.contains(&Variant::Aes128) {
            return Ok(());
        }
        return Err(ServeError::ClearRefused);
    }
    Err(ServeError::VariantNotOffered)
}

/// Resolves the keys of every rendition of `a` for `variant` under `policy` (creating auto keys
/// on first use), and checks that each protected track can be protected correctly, so a protected
/// manifest never lists a segment we would fail to produce.
///
/// `only`: a segment or init request needs just its rendition's key, and its builder checks the
/// bitstream itself on a cache miss, so the per-rendition work is not repeated on every request.
pub(super) fn protection(
    drm: &Drm,
    policy: &Policy,
    a: &Asset,
    variant: Variant,
    only: Option<&str>,
) -> Result<Protection, ServeError> {
    let mut prot = Protection {
        variant,
        keys: Default::default(),
        envelope: None,
        clear_lead: policy.clear_lead_segments,
        systems: policy.systems.clone(),
        license_urls: policy.license_urls.clone(),
        raw_key_delivery: policy.key_delivery != crate::drm::KeyDelivery::None,
        hls_keyformat: None,
        token: None,
    };
    let key_error = |e: crate::drm::store::StoreError| ServeError::Protect(format!("key: {e}"));
    match variant {
        Variant::Clear => {}
        Variant::Aes128 => {
            let spec = policy.keys.envelope.as_ref().ok_or(ServeError::VariantNotOffered)?;
            prot.envelope = Some(drm.resolve(policy, &a.id, "envelope", spec).map_err(key_error)?);
        }
        Variant::Cenc | Variant::Cbcs => {
            for r in a.renditions.iter().filter(|r| only.is_none_or(|id| id == r.id)) {
                let Some(t) = r.track() else { continue };
                if let Some((class, spec)) = policy.class_of(t.kind, t.entry.height) {
                    if only.is_none() {
                        protect::check(t, variant)?;
                    }
                    prot.keys.insert(r.id.clone(), drm.resolve(policy, &a.id, class, spec).map_err(key_error)?);
                }
            }
        }
    }
    Ok(prot)
}
