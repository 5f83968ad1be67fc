//! What a device gets: the catalog of assets whose policy issues device licenses (with their
//! content keys), the entitlement test, the validity period, and the objects themselves
//! (license, domain key, index, certificate), each built from canonical inputs so that the same
//! inputs give the same bytes on every node and a writer can tell, from a digest alone, that a
//! file is already what it would write.

use std::sync::Arc;

use serde::Serialize;
use zeroize::Zeroizing;

use super::jose::{self, Jwk};
use super::keys::OriginKeys;
use super::objects::{
    typ, BindKind, Binding, Certificate, DomainKey, Index, IndexDomain, IndexEntry, KeySet, License, OctKey, RootKey,
    RootLicense, V,
};
use super::registry::{DeviceRecord, DomainRecord, Entitlement};
use super::DeviceError;
use crate::drm::{ContentKey, DeviceLicenses, Drm, Policy, Variant};
use crate::storage::{AssetState, Library};

/// One key of an asset, with its class.
#[derive(Debug, Clone)]
pub struct EntryKey {
    /// video, sd, hd, uhd, audio or envelope.
    pub class: &'static str,
    /// The key.
    pub key: Arc<ContentKey>,
}

/// An asset that device licenses are issued for.
#[derive(Debug, Clone)]
pub struct AssetEntry {
    /// Asset id.
    pub id: String,
    /// Its policy's name.
    pub policy: String,
    /// Whether the policy chains (chaining devices get roots, not this asset's license).
    pub chained: bool,
    /// A chained policy's root-key versions live when the catalog was made.
    pub roots: Vec<crate::drm::RootKeyVersion>,
    /// Its keys, one per class, in a stable order.
    pub keys: Vec<EntryKey>,
}

/// Every ready asset whose policy issues device licenses (`direct`, or `chained`, whose
/// non-chaining devices get direct licenses), with its keys (auto keys are created as a request
/// would). An asset whose keys cannot be had is left out, with a warning.
pub fn catalog(library: &Library, drm: &Drm) -> Vec<AssetEntry> {
    let mut out = Vec::new();
    for (id, state) in &library.assets {
        let AssetState::Ready(asset) = state else { continue };
        let policy = drm.policy_for(id);
        if policy.device_licenses == DeviceLicenses::None || !policy.is_protected() {
            continue;
        }
        match asset_keys(drm, &policy, asset) {
            Ok(keys) if !keys.is_empty() => {
                let chained = policy.device_licenses == DeviceLicenses::Chained;
                let roots = policy.live_roots(super::unix_now());
                out.push(AssetEntry { id: id.clone(), policy: policy.name.clone(), chained, roots, keys })
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(asset = %id, error = %e, "no device licenses for this asset: key unavailable"),
        }
    }
    out
}

/// Every content key of `asset` under `policy`, one per class (and the envelope key when HLS
/// AES-128 is offered), sorted by class: what a direct license or a leaf holds.
pub fn asset_keys(
    drm: &Drm,
    policy: &Policy,
    asset: &crate::packaging::plan::Asset,
) -> Result<Vec<EntryKey>, crate::drm::store::StoreError> {
    let mut classes: Vec<(&'static str, &crate::drm::KeySpec)> = Vec::new();
    for r in &asset.renditions {
        let Some(t) = r.track() else { continue };
        if let Some((class, spec)) = policy.class_of(t.kind, t.entry.height) {
            if !classes.iter().any(|(c, _)| *c == class) {
                classes.push((class, spec));
            }
        }
    }
    if let (true, Some(spec)) = (policy.hls.contains(&Variant::Aes128), &policy.keys.envelope) {
        classes.push(("envelope", spec));
    }
    let mut keys = Vec::new();
    for (class, spec) in classes {
        keys.push(EntryKey { class, key: drm.resolve(policy, &asset.id, class, spec)? });
    }
    keys.sort_by(|a, b| a.class.cmp(b.class));
    Ok(keys)
}

impl AssetEntry {
    /// Key ids, hex, in order.
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.key.kid.hex()).collect()
    }
}

/// Whether a snapshot entitles to `entry` at `now`.
pub fn entitled(ent: &Entitlement, entry: &AssetEntry, now: i64) -> bool {
    ent.until > now
        && ent.policies.contains(&entry.policy)
        && ent.assets.as_ref().is_none_or(|a| a.contains(&entry.id))
        && ent
            .kids
            .as_ref()
            .is_none_or(|k| entry.keys.iter().all(|e| k.iter().any(|x| x.eq_ignore_ascii_case(&e.key.kid.hex()))))
}

/// The union of several snapshots (a domain is entitled to what any of its members is).
pub fn union(ents: &[&Entitlement]) -> Entitlement {
    let mut out = Entitlement::default();
    let mut assets: Option<Vec<String>> = Some(Vec::new());
    let mut kids: Option<Vec<String>> = Some(Vec::new());
    for e in ents {
        for p in &e.policies {
            if !out.policies.contains(p) {
                out.policies.push(p.clone());
            }
        }
        // An unscoped member makes the union unscoped.
        assets = match (assets, &e.assets) {
            (Some(mut a), Some(b)) => {
                a.extend(b.iter().cloned());
                Some(a)
            }
            _ => None,
        };
        kids = match (kids, &e.kids) {
            (Some(mut a), Some(b)) => {
                a.extend(b.iter().cloned());
                Some(a)
            }
            _ => None,
        };
        out.until = out.until.max(e.until);
    }
    out.policies.sort();
    out.assets = if ents.is_empty() { Some(Vec::new()) } else { assets };
    out.kids = if ents.is_empty() { Some(Vec::new()) } else { kids };
    out
}

/// A validity period: `seq` = ⌊now / ttl⌋, `nbf` its start (aligned, so every node agrees),
/// `exp` two periods later (a full period to pick up the next file), capped by the entitlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// Period index.
    pub seq: i64,
    /// Start.
    pub nbf: i64,
    /// End.
    pub exp: i64,
}

/// The period at `now`, or `None` when the entitlement has lapsed.
pub fn period(now: i64, ttl_secs: i64, until: i64) -> Option<Period> {
    let ttl = ttl_secs.max(1);
    let seq = now.div_euclid(ttl);
    let nbf = seq.saturating_mul(ttl);
    let exp = nbf.saturating_add(ttl.saturating_mul(2)).min(until);
    (exp > now).then_some(Period { seq, nbf, exp })
}

/// A device's binding.
pub fn device_binding(d: &DeviceRecord) -> Binding {
    Binding { kind: BindKind::Device, id: d.id.clone(), gen: d.gen, thumb: d.thumb.clone() }
}

/// A domain's binding (its public key at key version `kv`).
pub fn domain_binding(keys: &OriginKeys, d: &DomainRecord) -> Result<(Binding, Jwk), DeviceError> {
    let public = keys.domain_key(&d.id, d.kv).map_err(|e| DeviceError::Internal(e.to_string()))?.public();
    Ok((Binding { kind: BindKind::Domain, id: d.id.clone(), gen: d.kv, thumb: public.thumbprint() }, public))
}

/// An object to write: its digest (cheap) and how to build it (EC operations).
pub struct Planned {
    /// Input digest (goes into the payload as `ih`).
    pub ih: String,
    /// Expiry, if any.
    pub exp: Option<i64>,
    /// Asset id (licenses).
    pub asset: Option<String>,
    /// Key ids (licenses).
    pub kids: Vec<String>,
    canonical: Zeroizing<Vec<u8>>,
    kind: PlannedKind,
}

enum PlannedKind {
    License { entry: AssetEntry, bind: Binding, to: Jwk, period: Period },
    Root { policy: String, version: u32, bind: Binding, to: Jwk, period: Period },
    DomainKey { domain: String, kv: u64, member: Binding, to: Jwk },
}

#[derive(Serialize)]
struct LicenseInput<'a> {
    o: &'static str,
    v: u32,
    signer: &'a str,
    bind: &'a Binding,
    to: String,
    asset: &'a str,
    pol: &'a str,
    nbf: i64,
    exp: i64,
    seq: i64,
    keys: Vec<(&'a str, String, String)>,
}

/// Plans the license of `entry` for `bind`, wrapped to `to`, valid for `period`.
pub fn plan_license(keys: &OriginKeys, entry: &AssetEntry, bind: &Binding, to: &Jwk, period: Period) -> Planned {
    let input = LicenseInput {
        o: "license",
        v: V,
        signer: &keys.current().kid,
        bind,
        to: to.thumbprint(),
        asset: &entry.id,
        pol: &entry.policy,
        nbf: period.nbf,
        exp: period.exp,
        seq: period.seq,
        // The key bytes are inputs too (a key change must change the file); the canonical form
        // is only ever hashed under the master secret, never stored.
        keys: entry
            .keys
            .iter()
            .map(|k| (k.class, k.key.kid.hex(), crate::crypto::key::hex(k.key.key.bytes())))
            .collect(),
    };
    let canonical = Zeroizing::new(serde_json::to_vec(&input).unwrap_or_default());
    Planned {
        ih: keys.input_digest(&canonical),
        exp: Some(period.exp),
        asset: Some(entry.id.clone()),
        kids: entry.kids(),
        canonical,
        kind: PlannedKind::License { entry: entry.clone(), bind: bind.clone(), to: to.clone(), period },
    }
}

/// The root licenses a chaining holder of `ent` gets from `catalog` at `now`: one per live
/// root-key version of every chained policy it is entitled to (and that has an asset), each
/// valid for `period` capped by the version's end.
pub fn plan_roots(
    keys: &OriginKeys,
    catalog: &[AssetEntry],
    ent: &Entitlement,
    bind: &Binding,
    to: &Jwk,
    period: Period,
    now: i64,
) -> Vec<(String, Planned)> {
    let mut seen: Vec<(&str, u32)> = Vec::new();
    let mut out = Vec::new();
    for e in catalog.iter().filter(|e| e.chained && entitled(ent, e, now)) {
        for r in &e.roots {
            if seen.contains(&(e.policy.as_str(), r.version)) {
                continue;
            }
            seen.push((e.policy.as_str(), r.version));
            let p = Period { exp: period.exp.min(r.not_after), ..period };
            if p.exp > now {
                let rkid = super::leaf::rkid(&e.policy, r.version);
                out.push((rkid, plan_root(keys, &e.policy, r.version, bind, to, p)));
            }
        }
    }
    out
}

/// Plans the root license of `policy` at root-key `version` for `bind`, wrapped to `to`.
pub fn plan_root(keys: &OriginKeys, policy: &str, version: u32, bind: &Binding, to: &Jwk, period: Period) -> Planned {
    let canonical = serde_json::to_vec(&serde_json::json!({
        "o": "root", "v": V, "signer": keys.current().kid, "bind": bind, "to": to.thumbprint(), "pol": policy,
        "version": version, "nbf": period.nbf, "exp": period.exp, "seq": period.seq,
    }))
    .unwrap_or_default();
    Planned {
        ih: keys.input_digest(&canonical),
        exp: Some(period.exp),
        asset: None,
        kids: Vec::new(),
        canonical: Zeroizing::new(canonical),
        kind: PlannedKind::Root { policy: policy.into(), version, bind: bind.clone(), to: to.clone(), period },
    }
}

/// Plans the domain key of `domain` for `member`.
pub fn plan_domain_key(keys: &OriginKeys, domain: &DomainRecord, member: &DeviceRecord) -> Planned {
    let bind = device_binding(member);
    let canonical = serde_json::to_vec(&serde_json::json!({
        "o": "domain-key", "v": V, "signer": keys.current().kid, "domain": domain.id, "kv": domain.kv, "member": bind,
    }))
    .unwrap_or_default();
    Planned {
        ih: keys.input_digest(&canonical),
        exp: None,
        asset: None,
        kids: Vec::new(),
        canonical: Zeroizing::new(canonical),
        kind: PlannedKind::DomainKey { domain: domain.id.clone(), kv: domain.kv, member: bind, to: member.enc.clone() },
    }
}

impl Planned {
    /// Builds the signed object (compact JWS).
    pub fn build(&self, keys: &OriginKeys) -> Result<String, DeviceError> {
        let internal = |e: jose::JoseError| DeviceError::Internal(e.to_string());
        let drbg = keys.drbg(&self.canonical);
        match &self.kind {
            PlannedKind::License { entry, bind, to, period } => {
                let set = KeySet {
                    asset: entry.id.clone(),
                    keys: entry
                        .keys
                        .iter()
                        .map(|k| OctKey {
                            kty: "oct".into(),
                            kid: jose::b64e(&k.key.kid.0),
                            k: jose::b64e(k.key.key.bytes()),
                            class: k.class.into(),
                        })
                        .collect(),
                };
                let plaintext =
                    Zeroizing::new(serde_json::to_vec(&set).map_err(|e| DeviceError::Internal(e.to_string()))?);
                let jwe = jose::jwe_encrypt(&plaintext, to, Some("drm-origin/keys"), &drbg).map_err(internal)?;
                let l = License {
                    v: V,
                    asset: entry.id.clone(),
                    pol: entry.policy.clone(),
                    bind: bind.clone(),
                    nbf: period.nbf,
                    exp: period.exp,
                    seq: period.seq,
                    kids: entry.kids(),
                    key: jwe,
                    ih: Some(self.ih.clone()),
                };
                let payload = serde_json::to_vec(&l).map_err(|e| DeviceError::Internal(e.to_string()))?;
                keys.sign(typ::LICENSE, &payload).map_err(internal)
            }
            PlannedKind::Root { policy, version, bind, to, period } => {
                let rkid = super::leaf::rkid(policy, *version);
                let root = keys.root_key(policy, *version);
                let jwk = RootKey {
                    kty: "oct".into(),
                    kid: rkid.clone(),
                    alg: "A256KW".into(),
                    k: jose::b64e(root.as_ref()),
                    ext: false,
                };
                let plaintext =
                    Zeroizing::new(serde_json::to_vec(&jwk).map_err(|e| DeviceError::Internal(e.to_string()))?);
                let jwe = jose::jwe_encrypt(&plaintext, to, Some("jwk+json"), &drbg).map_err(internal)?;
                let l = RootLicense {
                    v: V,
                    pol: policy.clone(),
                    rkid,
                    bind: bind.clone(),
                    nbf: period.nbf,
                    exp: period.exp,
                    seq: period.seq,
                    key: jwe,
                    ih: Some(self.ih.clone()),
                };
                let payload = serde_json::to_vec(&l).map_err(|e| DeviceError::Internal(e.to_string()))?;
                keys.sign(typ::ROOT, &payload).map_err(internal)
            }
            PlannedKind::DomainKey { domain, kv, member, to } => {
                let private = keys.domain_key(domain, *kv).map_err(internal)?;
                let jwk = private.to_private_json();
                let jwe = jose::jwe_encrypt(jwk.as_bytes(), to, Some("jwk+json"), &drbg).map_err(internal)?;
                let dk = DomainKey {
                    v: V,
                    domain: domain.clone(),
                    kv: *kv,
                    member: member.clone(),
                    public: private.public().to_json(),
                    key: jwe,
                    ih: Some(self.ih.clone()),
                };
                let payload = serde_json::to_vec(&dk).map_err(|e| DeviceError::Internal(e.to_string()))?;
                keys.sign(typ::DOMAIN_KEY, &payload).map_err(internal)
            }
        }
    }
}

/// The signed index of a folder, and its digest.
pub fn index(
    keys: &OriginKeys,
    bind: &Binding,
    files: Vec<IndexEntry>,
    domains: Vec<IndexDomain>,
) -> Result<(String, String), DeviceError> {
    let mut idx = Index { v: V, bind: bind.clone(), files, domains, ih: None };
    let ih = index_input_digest(keys, &idx)?;
    idx.ih = Some(ih.clone());
    let payload = serde_json::to_vec(&idx).map_err(|e| DeviceError::Internal(e.to_string()))?;
    let jws = keys.sign(typ::INDEX, &payload).map_err(|e| DeviceError::Internal(e.to_string()))?;
    Ok((ih, jws))
}

/// The input digest of an index (computed without its own `ih`).
pub fn index_input_digest(keys: &OriginKeys, idx: &Index) -> Result<String, DeviceError> {
    let payload =
        serde_json::to_vec(&Index { ih: None, ..idx.clone() }).map_err(|e| DeviceError::Internal(e.to_string()))?;
    let mut canonical = format!("index/{}/", keys.current().kid).into_bytes();
    canonical.extend_from_slice(&payload);
    Ok(keys.input_digest(&canonical))
}

/// The device certificate.
pub fn certificate(keys: &OriginKeys, d: &DeviceRecord, now: i64) -> Result<String, DeviceError> {
    let c = Certificate {
        v: V,
        iss: keys.current().kid.clone(),
        dev: d.id.clone(),
        gen: d.gen,
        sub: d.subject.clone(),
        enc: d.enc.to_json(),
        sig: d.sig.to_json(),
        thumb: d.thumb.clone(),
        chain: d.chain,
        iat: now,
    };
    let payload = serde_json::to_vec(&c).map_err(|e| DeviceError::Internal(e.to_string()))?;
    keys.sign(typ::CERTIFICATE, &payload).map_err(|e| DeviceError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_aligned_and_capped() {
        let day = 86_400;
        let p = period(10 * day + 5, 7 * day, i64::MAX).unwrap();
        assert_eq!((p.seq, p.nbf, p.exp), (1, 7 * day, 21 * day));
        assert_eq!(period(10 * day + 6, 7 * day, i64::MAX), Some(p), "same period, same bounds");
        assert_eq!(period(10 * day, 7 * day, 12 * day).unwrap().exp, 12 * day);
        assert_eq!(period(10 * day, 7 * day, 10 * day), None, "entitlement over");
    }

    #[test]
    fn entitlement_union_and_scope() {
        let a = Entitlement { policies: vec!["p".into()], assets: Some(vec!["x".into()]), kids: None, until: 50 };
        let b = Entitlement { policies: vec!["q".into()], assets: None, kids: None, until: 90 };
        let u = union(&[&a, &b]);
        assert_eq!((u.policies.clone(), u.assets.clone(), u.until), (vec!["p".into(), "q".into()], None, 90));
        let u = union(&[&a]);
        assert_eq!(u.assets, Some(vec!["x".to_owned()]));
        assert_eq!(union(&[]).policies.len(), 0);
    }
}
