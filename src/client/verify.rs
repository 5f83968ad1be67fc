//! Checks on every origin object before the client uses it. Each refusal has its word:
//! `unknown_signing_key`, `bad_signature`, `wrong_type`, `malformed`, `wrong_device`,
//! `stale_generation`, `wrong_device_key`, `wrong_domain`, `not_yet_valid`, `expired`,
//! `rollback`, `cannot_unwrap`, `wrong_asset`; chaining adds `root_expired`, `no_root`,
//! `wrong_policy`, `cannot_unwrap_leaf`.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::store::State;
use super::ClientError;
use crate::crypto::{Key, KeyId};
use crate::license::device::jose::{self, Jwk, Jws, PrivateKey};
use crate::license::device::keys::parse_jwks;
use crate::license::device::leaf::Leaf;
use crate::license::device::objects::{
    self, BindKind, DomainKey, KeyAnnouncement, KeySet, License, RootKey, RootLicense,
};

/// Verifies a compact origin object of type `typ` with the pinned keys.
pub fn verify_object(state: &State, compact: &str, typ: &str) -> Result<Jws, ClientError> {
    let jws = Jws::parse(compact.trim()).map_err(|e| ClientError::refused("malformed", e.to_string()))?;
    let kid = jws.header.kid.clone().unwrap_or_default();
    let key =
        state.trusted_keys.get(&kid).and_then(|j| Jwk::parse(j).ok()).ok_or_else(|| {
            ClientError::refused("unknown_signing_key", format!("kid {kid} is not a pinned origin key"))
        })?;
    jws.verify(&key).map_err(|_| ClientError::refused("bad_signature", format!("{typ} signature")))?;
    if jws.header.typ != typ {
        return Err(ClientError::refused("wrong_type", format!("{} is not {typ}", jws.header.typ)));
    }
    Ok(jws)
}

/// Follows a key rotation: pins every key of `jwks` that an already pinned key announced
/// (transitively). Returns how many keys were added. Keys nobody vouched for are ignored.
pub fn follow_rotation(state: &mut State, jwks: &str) -> Result<usize, ClientError> {
    let (keys, announcements) = parse_jwks(jwks).map_err(|e| ClientError::refused("malformed", e.to_string()))?;
    let published: BTreeMap<String, Jwk> = keys.into_iter().collect();
    let mut added = 0usize;
    loop {
        let mut progress = false;
        for a in &announcements {
            let Ok(jws) = verify_object(state, a, objects::typ::KEY_ANNOUNCEMENT) else { continue };
            let Ok(p) = jws.payload_as::<KeyAnnouncement>() else { continue };
            let Ok(jwk) = Jwk::parse(&p.jwk) else { continue };
            if jwk.thumbprint() != p.kid
                || published.get(&p.kid) != Some(&jwk)
                || state.trusted_keys.contains_key(&p.kid)
            {
                continue;
            }
            state.trusted_keys.insert(p.kid, jwk.to_json());
            added = added.saturating_add(1);
            progress = true;
        }
        if !progress {
            return Ok(added);
        }
    }
}

/// Content keys from an opened license: kid → (key, class).
#[derive(Default)]
pub struct Keys(pub BTreeMap<KeyId, (Key, String)>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(k, (_, c))| format!("{k} ({c})"))).finish()
    }
}

/// The key that opens what `l` is bound to, after checking the binding against this device.
fn binding_key(state: &State, l: &License, enc: &PrivateKey) -> Result<PrivateKey, ClientError> {
    bound_key(state, &l.bind, enc)
}

/// The key that opens what `bind` names, after checking it against this device.
fn bound_key(state: &State, bind: &objects::Binding, enc: &PrivateKey) -> Result<PrivateKey, ClientError> {
    let l = bind;
    match l.kind {
        BindKind::Device => {
            if l.id != state.device_id {
                return Err(ClientError::refused("wrong_device", format!("bound to device {}", l.id)));
            }
            if l.gen != state.gen {
                return Err(ClientError::refused(
                    "stale_generation",
                    format!("bound to generation {} of this device, which is at {}", l.gen, state.gen),
                ));
            }
            if l.thumb != enc.public().thumbprint() {
                return Err(ClientError::refused("wrong_device_key", "bound to another key of this device"));
            }
            Ok(enc.clone())
        }
        BindKind::Domain => {
            let held = state.domains.get(&l.id).and_then(|d| d.keys.get(&l.gen)).ok_or_else(|| {
                ClientError::refused("wrong_domain", format!("no key of domain {} version {}", l.id, l.gen))
            })?;
            let dk = open_domain_key(state, held, enc)?;
            if dk.public().thumbprint() != l.thumb {
                return Err(ClientError::refused("wrong_domain", "bound to another key of the domain"));
            }
            Ok(dk)
        }
    }
}

/// Opens a held domain-key object with the device key.
pub fn open_domain_key(state: &State, compact: &str, enc: &PrivateKey) -> Result<PrivateKey, ClientError> {
    let jws = verify_object(state, compact, objects::typ::DOMAIN_KEY)?;
    let dk: DomainKey = jws.payload_as().map_err(|e| ClientError::refused("malformed", e.to_string()))?;
    if dk.member.id != state.device_id || dk.member.gen != state.gen || dk.member.thumb != enc.public().thumbprint() {
        return Err(ClientError::refused("wrong_device", "domain key wrapped to another device or generation"));
    }
    let jwk = jose::jwe_decrypt(&dk.key, enc).map_err(|_| ClientError::refused("cannot_unwrap", "domain key"))?;
    let v: serde_json::Value =
        serde_json::from_slice(&jwk).map_err(|_| ClientError::refused("malformed", "domain key"))?;
    let key = PrivateKey::from_private_json(&v).map_err(|e| ClientError::refused("malformed", e.to_string()))?;
    if Jwk::parse(&dk.public).ok().as_ref() != Some(&key.public()) {
        return Err(ClientError::refused("malformed", "domain key does not match its public key"));
    }
    Ok(key)
}

/// The `seqs` key of a license.
pub fn seq_key(l: &License) -> String {
    match l.bind.kind {
        BindKind::Device => format!("device:{}", l.asset),
        BindKind::Domain => format!("domain:{}:{}", l.bind.id, l.asset),
    }
}

/// Parses and verifies a license without opening it (signature and `typ`).
pub fn parse_license(state: &State, compact: &str) -> Result<License, ClientError> {
    let jws = verify_object(state, compact, objects::typ::LICENSE)?;
    let l: License = jws.payload_as().map_err(|e| ClientError::refused("malformed", e.to_string()))?;
    if l.v != objects::V {
        return Err(ClientError::refused("malformed", format!("license version {}", l.v)));
    }
    Ok(l)
}

/// Every check, then the content keys. `now` is the caller's clock; it is raised to the last
/// trusted time, and `state` records the new time and `seq` (the caller saves it).
pub fn open_license(
    state: &mut State,
    compact: &str,
    enc: &PrivateKey,
    now: i64,
    skew: i64,
) -> Result<(License, Keys), ClientError> {
    let l = parse_license(state, compact)?;
    let key = binding_key(state, &l, enc)?;
    let now = now.max(state.last_time);
    if now.saturating_add(skew) < l.nbf {
        return Err(ClientError::refused("not_yet_valid", format!("valid from {}", l.nbf)));
    }
    if now.saturating_sub(skew) >= l.exp {
        return Err(ClientError::refused("expired", format!("expired at {}", l.exp)));
    }
    let sk = seq_key(&l);
    if let Some(seen) = state.seqs.get(&sk) {
        if l.seq < *seen {
            return Err(ClientError::refused("rollback", format!("seq {} is older than {seen}", l.seq)));
        }
    }
    let plain: Zeroizing<Vec<u8>> =
        jose::jwe_decrypt(&l.key, &key).map_err(|_| ClientError::refused("cannot_unwrap", "license keys"))?;
    let set: KeySet = serde_json::from_slice(&plain).map_err(|_| ClientError::refused("malformed", "key set"))?;
    if set.asset != l.asset {
        return Err(ClientError::refused("wrong_asset", "key set of another asset"));
    }
    let mut keys = Keys::default();
    for k in &set.keys {
        let kid: [u8; 16] = jose::b64d(&k.kid)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ClientError::refused("malformed", "kid"))?;
        let key: [u8; 16] = Zeroizing::new(jose::b64d(&k.k).ok_or_else(|| ClientError::refused("malformed", "key"))?)
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::refused("malformed", "key size"))?;
        let kid = KeyId(kid);
        if !l.kids.iter().any(|x| x.eq_ignore_ascii_case(&kid.hex())) {
            return Err(ClientError::refused("malformed", "key set does not match the license's kids"));
        }
        keys.0.insert(kid, (Key::new(key), k.class.clone()));
    }
    state.seqs.insert(sk, l.seq);
    // The origin's issuance time is the trusted clock: it never goes back past it.
    state.last_time = state.last_time.max(l.nbf);
    Ok((l, keys))
}

/// Parses and verifies a root license without opening it.
pub fn parse_root(state: &State, compact: &str) -> Result<RootLicense, ClientError> {
    let jws = verify_object(state, compact, objects::typ::ROOT)?;
    let r: RootLicense = jws.payload_as().map_err(|e| ClientError::refused("malformed", e.to_string()))?;
    if r.v != objects::V {
        return Err(ClientError::refused("malformed", format!("root license version {}", r.v)));
    }
    Ok(r)
}

/// Every check of a root license (signature, type, binding, validity with skew, rollback), then
/// its root key. An expired root is refused as `root_expired`: the leaves it opens stop playing
/// until a renewal. `state` records the new time and `seq` (the caller saves it).
pub fn open_root(
    state: &mut State,
    compact: &str,
    enc: &PrivateKey,
    now: i64,
    skew: i64,
) -> Result<(RootLicense, Zeroizing<[u8; 32]>), ClientError> {
    let r = parse_root(state, compact)?;
    let key = bound_key(state, &r.bind, enc)?;
    let now = now.max(state.last_time);
    if now.saturating_add(skew) < r.nbf {
        return Err(ClientError::refused("not_yet_valid", format!("root {} valid from {}", r.rkid, r.nbf)));
    }
    if now.saturating_sub(skew) >= r.exp {
        return Err(ClientError::refused("root_expired", format!("root {} expired at {}; renew it", r.rkid, r.exp)));
    }
    let sk = format!("root:{}", r.rkid);
    if let Some(seen) = state.seqs.get(&sk) {
        if r.seq < *seen {
            return Err(ClientError::refused("rollback", format!("seq {} is older than {seen}", r.seq)));
        }
    }
    let plain = jose::jwe_decrypt(&r.key, &key).map_err(|_| ClientError::refused("cannot_unwrap", "root key"))?;
    let jwk: RootKey = serde_json::from_slice(&plain).map_err(|_| ClientError::refused("malformed", "root key"))?;
    if jwk.kid != r.rkid || jwk.alg != "A256KW" || jwk.kty != "oct" {
        return Err(ClientError::refused("malformed", "root key does not match its license"));
    }
    let k: [u8; 32] = Zeroizing::new(jose::b64d(&jwk.k).ok_or_else(|| ClientError::refused("malformed", "root key"))?)
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::refused("malformed", "root key size"))?;
    state.seqs.insert(sk, r.seq);
    state.last_time = state.last_time.max(r.nbf);
    Ok((r, Zeroizing::new(k)))
}

/// The content keys of a leaf, opened with a root key (`policy` is the root's: a leaf of
/// another policy is refused as `wrong_policy`).
pub fn open_leaf(leaf: &Leaf, rkid: &str, policy: &str, root_key: &[u8; 32]) -> Result<Keys, ClientError> {
    if leaf.header.pol != policy {
        return Err(ClientError::refused(
            "wrong_policy",
            format!("leaf of policy {}, root of {policy}", leaf.header.pol),
        ));
    }
    let set = leaf.open(rkid, root_key).map_err(|_| ClientError::refused("cannot_unwrap_leaf", "leaf"))?;
    let mut keys = Keys::default();
    for k in &set.keys {
        let kid: [u8; 16] = jose::b64d(&k.kid)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| ClientError::refused("malformed", "kid"))?;
        let key: [u8; 16] = Zeroizing::new(jose::b64d(&k.k).ok_or_else(|| ClientError::refused("malformed", "key"))?)
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::refused("malformed", "key size"))?;
        let kid = KeyId(kid);
        if !leaf.header.kids.iter().any(|x| x.eq_ignore_ascii_case(&kid.hex())) {
            return Err(ClientError::refused("malformed", "leaf keys do not match its kids"));
        }
        keys.0.insert(kid, (Key::new(key), k.class.clone()));
    }
    Ok(keys)
}
