//! What a request may be served under the asset's policy, and the keys it needs: shared by the
//! manifest and segment rooms.

use std::sync::Arc;

use crate::drm::{Drm, Policy, Variant};
use crate::packaging::plan::Asset;
use crate::packaging::version;
use crate::packaging::{protect, Protection};

use super::app::App;
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

/// The protection of `variant` for asset `a` under the configuration in force: every
/// rendition's key (auto keys are created on first use), each protected track checked, so a
/// protected manifest never lists a segment we would fail to produce, and the version of the
/// variant's segment names. Built once per (asset, configuration, variant) and shared by every
/// manifest and segment request (the plan cache); a failure is not cached.
pub(super) fn plan(app: &App, a: &Asset, variant: Variant) -> Result<Arc<Protection>, ServeError> {
    let (drm, generation) = app.drm();
    let key = (a.generation, generation, variant);
    app.plans.try_get_with(key, || build(&drm, a, variant).map(Arc::new)).map_err(|e: Arc<ServeError>| match &*e {
        ServeError::VariantNotOffered => ServeError::VariantNotOffered,
        ServeError::Protect(why) => ServeError::Protect(why.clone()),
        other => ServeError::Protect(other.to_string()),
    })
}

fn build(drm: &Drm, a: &Asset, variant: Variant) -> Result<Protection, ServeError> {
    let policy = drm.policy_for(&a.id);
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
        versions: Default::default(),
        clear_versions: a.renditions.iter().map(|r| (r.id.clone(), r.clear_version)).collect(),
    };
    let key_error = |e: crate::drm::store::StoreError| ServeError::Protect(format!("key: {e}"));
    match variant {
        Variant::Clear => {}
        Variant::Aes128 => {
            let spec = policy.keys.envelope.as_ref().ok_or(ServeError::VariantNotOffered)?;
            prot.envelope = Some(drm.resolve(&policy, &a.id, "envelope", spec).map_err(key_error)?);
        }
        Variant::Cenc | Variant::Cbcs => {
            for r in &a.renditions {
                let Some(t) = r.track() else { continue };
                if let Some((class, spec)) = policy.class_of(t.kind, t.entry.height) {
                    protect::check(t, variant)?;
                    prot.keys.insert(r.id.clone(), drm.resolve(&policy, &a.id, class, spec).map_err(key_error)?);
                }
            }
        }
    }
    prot.versions = a.renditions.iter().map(|r| (r.id.clone(), version::of(r, &prot))).collect();
    Ok(prot)
}
