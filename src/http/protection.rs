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
    app.plans.try_get_with(key, || build(app, &drm, a, variant).map(Arc::new)).map_err(|e: Arc<ServeError>| match &*e {
        ServeError::VariantNotOffered => ServeError::VariantNotOffered,
        ServeError::Protect(why) => ServeError::Protect(why.clone()),
        other => ServeError::Protect(other.to_string()),
    })
}

fn build(app: &App, drm: &Drm, a: &Asset, variant: Variant) -> Result<Protection, ServeError> {
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
        leaf: None,
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
    if variant != Variant::Clear {
        prot.leaf = leaf(app, drm, &policy, a)?;
    }
    prot.versions = a.renditions.iter().map(|r| (r.id.clone(), version::of(r, &prot))).collect();
    Ok(prot)
}

/// A chained policy's leaf for asset `a`: every content key of the asset (all classes, and the
/// envelope key when AES-128 is offered, so every variant carries the same leaf), wrapped under
/// the root-key versions live now. `None` for other policies.
fn leaf(app: &App, drm: &Drm, policy: &Policy, a: &Asset) -> Result<Option<Arc<str>>, ServeError> {
    use crate::license::device::leaf::{self, LeafKey};
    let roots = policy.live_roots(crate::license::device::unix_now());
    if policy.device_licenses != crate::drm::DeviceLicenses::Chained {
        return Ok(None);
    }
    let Some(devices) = app.devices() else {
        return Err(ServeError::Protect("chained policy without device licensing".into()));
    };
    if roots.is_empty() {
        return Err(ServeError::Protect(format!("policy {}: no root-key version is live", policy.name)));
    }
    let keys = crate::license::device::issue::asset_keys(drm, policy, a)
        .map_err(|e| ServeError::Protect(format!("key: {e}")))?;
    let content: Vec<LeafKey<'_>> = keys.iter().map(|k| LeafKey { class: k.class, key: &k.key }).collect();
    leaf::build(&devices.keys, &a.id, &policy.name, &content, &roots)
        .map(|l| l.map(Arc::from))
        .map_err(|e| ServeError::Protect(format!("leaf: {e}")))
}
