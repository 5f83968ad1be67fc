//! The client's operations, as `drm-origin client …` runs them. Origin endpoints are used to
//! register, reset, join and leave (and for an online license on request); playback uses only
//! the static license folder, or licenses already kept or imported.

use std::path::Path;

use serde_json::{json, Value};

use super::http::{reason_of, strip_query, Http};
use super::media::{self, manifest::Kind, Stats};
use super::store::{HeldDomain, Store};
use super::verify::{self, Keys};
use super::ClientError;
use crate::crypto::{Key, KeyId};
use crate::license::device::jose::{self, JwsHeader};
use crate::license::device::leaf::Leaf;
use crate::license::device::objects::{self, typ, Act, BindKind, Certificate, Export, Index, RootLicense, V};
use crate::license::device::unix_now;

/// A client over one device store.
pub struct Client {
    /// The device's store.
    pub store: Store,
    http: Http,
    /// Clock skew allowed on license validity.
    pub skew: i64,
}

fn refusal_of(url: &str, a: &super::http::Answer) -> ClientError {
    ClientError::Status { url: strip_query(url), status: a.status.as_u16(), reason: reason_of(&a.body) }
}

fn json_of(a: &super::http::Answer) -> Result<Value, ClientError> {
    serde_json::from_slice(&a.body).map_err(|_| ClientError::Http("answer is not JSON".into()))
}

impl Client {
    /// Opens the store in `dir`.
    pub fn open(dir: &Path) -> Result<Client, ClientError> {
        Ok(Client { store: Store::open(dir)?, http: Http::new()?, skew: 300 })
    }

    fn origin_url(&self, path: &str) -> String {
        format!("{}{path}", self.store.state.origin.trim_end_matches('/'))
    }

    fn static_url(&self, rel: &str) -> String {
        format!("{}/{rel}", self.store.state.licenses.trim_end_matches('/'))
    }

    /// A signed device request for `act`, with `extra` members.
    fn request(
        &self,
        act: Act,
        extra: serde_json::Map<String, Value>,
        gen: Option<u64>,
    ) -> Result<String, ClientError> {
        let sig = self.store.key("sig")?;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|e| ClientError::Store(e.to_string()))?;
        let mut p = serde_json::Map::new();
        p.insert("v".into(), V.into());
        p.insert("act".into(), serde_json::to_value(act).map_err(|e| ClientError::Store(e.to_string()))?);
        p.insert("dev".into(), self.store.state.device_id.clone().into());
        if let Some(g) = gen {
            p.insert("gen".into(), g.into());
        }
        p.insert("iat".into(), unix_now().into());
        p.insert("jti".into(), jose::b64e(&jti).into());
        p.insert("aud".into(), act.path().into());
        p.extend(extra);
        let header =
            JwsHeader { alg: "ES256".into(), kid: Some(self.store.state.device_id.clone()), typ: typ::REQUEST.into() };
        jose::jws_sign(&header, Value::Object(p).to_string().as_bytes(), &sig)
            .map_err(|e| ClientError::Store(e.to_string()))
    }

    /// Registers (or, after a factory reset, re-registers) this device.
    pub async fn register(
        &mut self,
        origin: &str,
        licenses: &str,
        token: &str,
        chain: bool,
    ) -> Result<Value, ClientError> {
        if self.store.state.gen > 0 && self.store.key("enc").is_ok() {
            return Err(ClientError::refused(
                "already_registered",
                "this store holds a registered device: reset it first",
            ));
        }
        self.store.state.origin = origin.trim_end_matches('/').to_owned();
        self.store.state.licenses = licenses.trim_end_matches('/').to_owned();
        let (enc, sig) = self.store.new_keys()?;
        let mut extra = serde_json::Map::new();
        extra.insert("enc".into(), enc.public().to_json());
        extra.insert("sig".into(), sig.public().to_json());
        extra.insert("chain".into(), chain.into());
        let req = self.request(Act::Register, extra, None)?;
        let url = self.origin_url(objects::path::REGISTER);
        let a = self.http.post_json(&url, &json!({"request": req}), Some(token)).await?;
        if !a.status.is_success() {
            return Err(refusal_of(&url, &a));
        }
        let body = json_of(&a)?;
        // First registration: pin the keys the origin answered with (trust on first use, over
        // the same TLS connection as the token); later, only keys announced by pinned ones.
        let keys_doc = body.get("origin_keys").map(Value::to_string).unwrap_or_default();
        if self.store.state.trusted_keys.is_empty() {
            let (keys, _) = crate::license::device::keys::parse_jwks(&keys_doc)
                .map_err(|e| ClientError::refused("malformed", e.to_string()))?;
            for (kid, k) in keys {
                self.store.state.trusted_keys.insert(kid, k.to_json());
            }
        } else {
            verify::follow_rotation(&mut self.store.state, &keys_doc)?;
        }
        let cert = body.get("certificate").and_then(Value::as_str).unwrap_or_default().to_owned();
        let c: Certificate = verify::verify_object(&self.store.state, &cert, typ::CERTIFICATE)?
            .payload_as()
            .map_err(|e| ClientError::refused("malformed", e.to_string()))?;
        if c.dev != self.store.state.device_id || c.thumb != enc.public().thumbprint() {
            return Err(ClientError::refused("wrong_device", "the certificate names another device or key"));
        }
        self.store.state.gen = c.gen;
        self.store.state.certificate = Some(cert);
        self.store.save()?;
        Ok(json!({"device_id": c.dev, "gen": c.gen, "licenses_path": body.get("licenses_path")}))
    }

    /// Verifies `compact` as `typ`, following a key rotation through the static folder's (or
    /// the origin's) published keys when it is signed by a key not pinned yet.
    async fn verified(&mut self, compact: &str, typ: &str) -> Result<jose::Jws, ClientError> {
        match verify::verify_object(&self.store.state, compact, typ) {
            Err(ClientError::Refused { reason: "unknown_signing_key", .. }) => {
                let mut doc = self.http.get_ok(&self.static_url("v1/keys.json")).await;
                if doc.is_err() {
                    doc = self.http.get_ok(&self.origin_url(objects::path::KEYS)).await;
                }
                let doc = String::from_utf8_lossy(&doc?).into_owned();
                if verify::follow_rotation(&mut self.store.state, &doc)? > 0 {
                    self.store.save()?;
                }
                verify::verify_object(&self.store.state, compact, typ)
            }
            other => other,
        }
    }

    /// This device's index in the static folder.
    pub async fn index(&mut self) -> Result<Index, ClientError> {
        let (id, gen) = (self.store.state.device_id.clone(), self.store.state.gen);
        if gen == 0 {
            return Err(ClientError::refused("not_registered", "register first"));
        }
        let url = self.static_url(&format!("v1/d/{id}/{gen}/index.json"));
        let text = String::from_utf8_lossy(&self.http.get_ok(&url).await?).into_owned();
        let idx: Index = self
            .verified(&text, typ::INDEX)
            .await?
            .payload_as()
            .map_err(|e| ClientError::refused("malformed", e.to_string()))?;
        if idx.bind.kind != BindKind::Device || idx.bind.id != id || idx.bind.gen != gen {
            return Err(ClientError::refused("stale_generation", "the index is for another device or generation"));
        }
        Ok(idx)
    }

    /// Picks up the domain keys the index lists (new members, new key versions).
    pub async fn sync_domains(&mut self, idx: &Index) -> Result<(), ClientError> {
        let enc = self.store.key("enc")?;
        for d in &idx.domains {
            if self.store.state.domains.get(&d.id).is_some_and(|h| h.keys.contains_key(&d.kv)) {
                continue;
            }
            let text = String::from_utf8_lossy(&self.http.get_ok(&self.static_url(&d.dkey)).await?).into_owned();
            self.verified(&text, typ::DOMAIN_KEY).await?;
            verify::open_domain_key(&self.store.state, &text, &enc)?;
            self.store
                .state
                .domains
                .entry(d.id.clone())
                .or_insert_with(|| HeldDomain { keys: Default::default() })
                .keys
                .insert(d.kv, text);
        }
        self.store.save()
    }

    /// Opens a license (every check), keeps it and saves the counters.
    pub async fn accept(&mut self, compact: &str) -> Result<(objects::License, Keys), ClientError> {
        self.verified(compact, typ::LICENSE).await?;
        let enc = self.store.key("enc")?;
        let (l, keys) = verify::open_license(&mut self.store.state, compact, &enc, unix_now(), self.skew)?;
        let key = verify::seq_key(&l);
        self.store.keep_license(&key, compact)?;
        self.store.save()?;
        Ok((l, keys))
    }

    /// Fetches a license from the static folder (by asset, or the one holding `kids`), or online
    /// with `token`; `domain` asks for the domain-bound one.
    pub async fn fetch_license(
        &mut self,
        asset: Option<&str>,
        kids: &[KeyId],
        domain: Option<&str>,
        online_token: Option<&str>,
    ) -> Result<(objects::License, Keys), ClientError> {
        if let Some(token) = online_token {
            let asset = asset.ok_or_else(|| ClientError::Store("--asset is needed online".into()))?;
            let mut extra = serde_json::Map::new();
            extra.insert("asset".into(), asset.into());
            if let Some(d) = domain {
                extra.insert("domain".into(), d.into());
            }
            let req = self.request(Act::License, extra, Some(self.store.state.gen))?;
            let url = self.origin_url(objects::path::LICENSE);
            let a = self.http.post_json(&url, &json!({"request": req}), Some(token)).await?;
            if !a.status.is_success() {
                return Err(refusal_of(&url, &a));
            }
            let lic = json_of(&a)?.get("license").and_then(Value::as_str).unwrap_or_default().to_owned();
            return self.accept(&lic).await;
        }
        let idx = self.index().await?;
        self.sync_domains(&idx).await?;
        let mut folders: Vec<(String, Option<String>)> = Vec::new();
        if domain.is_none() {
            folders.push((String::new(), None));
        }
        for d in &idx.domains {
            if domain.is_none_or(|x| x == d.id) {
                folders.push((d.index.clone(), Some(d.id.clone())));
            }
        }
        let wanted = |e: &objects::IndexEntry| {
            asset.map_or_else(
                || !kids.is_empty() && kids.iter().all(|k| e.kids.iter().any(|x| x.eq_ignore_ascii_case(&k.hex()))),
                |a| e.asset.as_deref() == Some(a),
            )
        };
        let mut last = ClientError::refused("no_license", "no license for this content in the license folder");
        for (index_path, _) in folders {
            let entries = if index_path.is_empty() {
                idx.files.clone()
            } else {
                let text =
                    String::from_utf8_lossy(&self.http.get_ok(&self.static_url(&index_path)).await?).into_owned();
                let di: Index = self
                    .verified(&text, typ::INDEX)
                    .await?
                    .payload_as()
                    .map_err(|e| ClientError::refused("malformed", e.to_string()))?;
                di.files
            };
            for e in entries.iter().filter(|e| wanted(e)) {
                let text = String::from_utf8_lossy(&self.http.get_ok(&self.static_url(&e.path)).await?).into_owned();
                match self.accept(&text).await {
                    Ok(x) => return Ok(x),
                    Err(err) => last = err,
                }
            }
        }
        Err(last)
    }

    /// Imports a `.dlx` export (or one `.lic`): each license is verified (a domain one must be for
    /// a domain this device holds the key of) before it is kept.
    pub async fn import(&mut self, text: &str) -> Result<usize, ClientError> {
        let items = match serde_json::from_str::<Export>(text) {
            Ok(x) if x.v == V && x.typ == typ::EXPORT => x.items,
            Ok(_) => return Err(ClientError::refused("malformed", "not a license export")),
            Err(_) => vec![text.trim().to_owned()],
        };
        if let Ok(idx) = self.index().await {
            // New domain keys first (a member that just joined).
            let _ = self.sync_domains(&idx).await;
        }
        let mut n = 0usize;
        for it in &items {
            self.accept(it).await?;
            n = n.saturating_add(1);
        }
        Ok(n)
    }

    /// The domain-bound licenses kept for `asset` (or all), as a `.dlx` document.
    pub fn export(&self, asset: Option<&str>) -> Result<String, ClientError> {
        let mut items = Vec::new();
        for l in self.store.licenses() {
            let Ok(p) = verify::parse_license(&self.store.state, &l) else { continue };
            if p.bind.kind == BindKind::Domain && asset.is_none_or(|a| a == p.asset) {
                items.push(l);
            }
        }
        if items.is_empty() {
            return Err(ClientError::refused(
                "no_license",
                "no domain-bound license to export (device-bound ones are useless elsewhere)",
            ));
        }
        serde_json::to_string(&Export { v: V, typ: typ::EXPORT.into(), items })
            .map_err(|e| ClientError::Store(e.to_string()))
    }

    /// Factory reset: tells the origin (signed by this device; `token` optional), then purges the
    /// keys, licenses and domain keys. `local_only` skips the origin (an offline reset; the owner
    /// resets it on the origin later).
    pub async fn reset(&mut self, token: Option<&str>, local_only: bool) -> Result<Value, ClientError> {
        let mut answer = json!({"device_id": self.store.state.device_id, "origin": "not contacted"});
        if !local_only {
            let req = self.request(Act::Reset, serde_json::Map::new(), Some(self.store.state.gen))?;
            let url = self.origin_url(objects::path::RESET);
            let a = self.http.post_json(&url, &json!({"request": req}), token).await?;
            if !a.status.is_success() {
                return Err(refusal_of(&url, &a));
            }
            answer = json_of(&a)?;
        }
        self.store.purge()?;
        Ok(answer)
    }

    /// Joins (or creates) a domain.
    pub async fn join(&mut self, token: &str, domain: Option<&str>) -> Result<Value, ClientError> {
        let mut extra = serde_json::Map::new();
        if let Some(d) = domain {
            extra.insert("domain".into(), d.into());
        }
        let req = self.request(Act::Join, extra, Some(self.store.state.gen))?;
        let url = self.origin_url(objects::path::JOIN);
        let a = self.http.post_json(&url, &json!({"request": req}), Some(token)).await?;
        if !a.status.is_success() {
            return Err(refusal_of(&url, &a));
        }
        let body = json_of(&a)?;
        let id = body.get("domain_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let kv = body.get("key_version").and_then(Value::as_u64).unwrap_or(0);
        let dkey = body.get("domain_key").and_then(Value::as_str).unwrap_or_default().to_owned();
        self.verified(&dkey, typ::DOMAIN_KEY).await?;
        verify::open_domain_key(&self.store.state, &dkey, &self.store.key("enc")?)?;
        self.store
            .state
            .domains
            .entry(id.clone())
            .or_insert_with(|| HeldDomain { keys: Default::default() })
            .keys
            .insert(kv, dkey);
        self.store.save()?;
        Ok(json!({"domain_id": id, "key_version": kv}))
    }

    /// Leaves a domain (its keys are forgotten here too).
    pub async fn leave(&mut self, token: Option<&str>, domain: &str) -> Result<Value, ClientError> {
        let mut extra = serde_json::Map::new();
        extra.insert("domain".into(), domain.into());
        let req = self.request(Act::Leave, extra, Some(self.store.state.gen))?;
        let url = self.origin_url(objects::path::LEAVE);
        let a = self.http.post_json(&url, &json!({"request": req}), token).await?;
        if !a.status.is_success() {
            return Err(refusal_of(&url, &a));
        }
        self.store.state.domains.remove(domain);
        self.store.save()?;
        json_of(&a)
    }

    /// Decrypts a rendition of `manifest_url` into clear fMP4 at `out`. The license is
    /// `license_text` if given (and only it), else a kept one that opens, else one from the
    /// static folder found by the content's key ids.
    pub async fn decrypt(
        &mut self,
        manifest_url: &str,
        rendition: Option<&str>,
        kind: Kind,
        license_text: Option<&str>,
        out: &Path,
    ) -> Result<(Stats, Value), ClientError> {
        let tracks = media::discover(&self.http, manifest_url).await?;
        let track = media::pick(tracks, rendition, kind)?;
        let prot = media::protection(&self.http, &track).await?;
        let needed = prot.kids();
        // A leaf in the init segment (chained policy): open it with a held or fetched root. A
        // device without a root for it (it registered without chaining) falls back to a direct
        // license; any other refusal (an expired root) stands.
        // A root license given with --license is used alone (and never falls back).
        let given_root = license_text.filter(|t| jose::Jws::parse(t.trim()).is_ok_and(|j| j.header.typ == typ::ROOT));
        let leaf = if license_text.is_none() || given_root.is_some() {
            crate::license::device::leaf::from_pssh(&prot.init)
        } else {
            None
        };
        if given_root.is_some() && leaf.is_none() {
            return Err(ClientError::refused("no_leaf", "a root license was given but the content carries no leaf"));
        }
        let mut chained = None;
        if let Some(l) = leaf {
            match self.chained_keys(&l, given_root).await {
                Ok((keys, info)) => {
                    check_kids(&keys, &needed)?;
                    chained = Some((keys, info));
                }
                Err(ClientError::Refused { reason: "no_root", .. }) if given_root.is_none() => {}
                Err(e) => return Err(e),
            }
        }
        let (keys, info) = match chained {
            Some(x) => x,
            None => {
                let (license, keys) = self.direct_keys(license_text, &needed).await?;
                let info = json!({
                    "path": "direct", "asset": license.asset,
                    "bound_to": format!("{:?}", license.bind.kind).to_lowercase(),
                });
                (keys, info)
            }
        };
        let envelope: Option<Key> = keys.0.values().find(|(_, c)| c == "envelope").map(|(k, _)| k.clone());
        let lookup = |kid: &KeyId| keys.0.get(kid).map(|(k, _)| k.clone());
        let stats = media::decrypt(&self.http, &track, &prot, &lookup, envelope.as_ref(), out).await?;
        let mut summary = json!({
            "rendition": track.id, "segments": stats.segments, "bytes": stats.bytes,
            "kids": needed.iter().map(|k| k.hex()).collect::<Vec<_>>(),
        });
        if let (Some(o), Some(i)) = (summary.as_object_mut(), info.as_object()) {
            o.extend(i.clone());
        }
        Ok((stats, summary))
    }

    /// The direct license for `needed`: `license_text` if given (and only it), else a kept one
    /// that opens, else one from the static folder.
    async fn direct_keys(
        &mut self,
        license_text: Option<&str>,
        needed: &[KeyId],
    ) -> Result<(objects::License, Keys), ClientError> {
        if let Some(t) = license_text {
            return self.accept_for(t, needed).await;
        }
        for l in self.store.licenses() {
            if let Ok(x) = self.accept_for(&l, needed).await {
                return Ok(x);
            }
        }
        let x = self.fetch_license(None, needed, None, None).await?;
        check_kids(&x.1, needed)?;
        Ok(x)
    }

    /// Root licenses (issue 11): online (`POST /.drm/root` with `token`, which acquires or
    /// renews them), else every `root/` file this device's index lists in the static folder.
    /// Each is verified and kept (a newer one replaces the older of the same root key).
    pub async fn fetch_roots(&mut self, online_token: Option<&str>) -> Result<Vec<RootLicense>, ClientError> {
        let texts: Vec<String> = match online_token {
            Some(token) => {
                let req = self.request(Act::Root, serde_json::Map::new(), Some(self.store.state.gen))?;
                let url = self.origin_url(objects::path::ROOT);
                let a = self.http.post_json(&url, &json!({"request": req}), Some(token)).await?;
                if !a.status.is_success() {
                    return Err(refusal_of(&url, &a));
                }
                json_of(&a)?
                    .get("roots")
                    .and_then(Value::as_array)
                    .map(|v| v.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default()
            }
            None => {
                let idx = self.index().await?;
                let mut out = Vec::new();
                for e in idx.files.iter().filter(|e| e.path.contains("/root/")) {
                    out.push(String::from_utf8_lossy(&self.http.get_ok(&self.static_url(&e.path)).await?).into_owned());
                }
                out
            }
        };
        let mut got = Vec::new();
        for t in texts {
            self.verified(&t, typ::ROOT).await?;
            let r = verify::parse_root(&self.store.state, &t)?;
            self.store.keep_license(&format!("root:{}", r.rkid), &t)?;
            got.push(r);
        }
        if got.is_empty() {
            return Err(ClientError::refused("no_root", "no root license for this device"));
        }
        Ok(got)
    }

    /// The content keys of a leaf: a held root for one of its root-key ids (fetched from the
    /// static folder when none is held) opens it, after every check of the root.
    async fn chained_keys(&mut self, leaf_bytes: &[u8], given: Option<&str>) -> Result<(Keys, Value), ClientError> {
        let leaf = Leaf::parse(leaf_bytes).map_err(|e| ClientError::refused("malformed_leaf", e.to_string()))?;
        let rkids = leaf.rkids();
        let enc = self.store.key("enc")?;
        let mut last = ClientError::refused("no_root", format!("no root license for {}", rkids.join(", ")));
        for attempt in 0..2 {
            let held = match given {
                // Every check, and its reason, on the one root given.
                Some(t) => {
                    self.verified(t, typ::ROOT).await?;
                    let r = verify::parse_root(&self.store.state, t)?;
                    if !rkids.contains(&r.rkid) {
                        return Err(ClientError::refused(
                            "wrong_root",
                            format!("root {} does not open this leaf (wrapped under {})", r.rkid, rkids.join(", ")),
                        ));
                    }
                    vec![t.trim().to_owned()]
                }
                None => self.store.licenses(),
            };
            for text in held {
                let Ok(r) = verify::parse_root(&self.store.state, &text) else { continue };
                if !rkids.contains(&r.rkid) {
                    continue;
                }
                match verify::open_root(&mut self.store.state, &text, &enc, unix_now(), self.skew) {
                    Ok((r, key)) => {
                        let keys = verify::open_leaf(&leaf, &r.rkid, &r.pol, &key)?;
                        self.store.save()?;
                        let info = json!({
                            "path": "chained", "rkid": r.rkid, "root_exp": r.exp, "asset": leaf.header.asset,
                            "bound_to": format!("{:?}", r.bind.kind).to_lowercase(),
                        });
                        return Ok((keys, info));
                    }
                    Err(e) => last = e,
                }
            }
            if attempt == 0 && given.is_none() {
                // Nothing held opens it: pick up this device's roots from the static folder (a
                // failure there leaves `last` as the answer).
                let _ = self.fetch_roots(None).await;
            }
        }
        Err(last)
    }

    async fn accept_for(&mut self, text: &str, needed: &[KeyId]) -> Result<(objects::License, Keys), ClientError> {
        let x = self.accept(text).await?;
        check_kids(&x.1, needed)?;
        Ok(x)
    }
}

fn check_kids(keys: &Keys, needed: &[KeyId]) -> Result<(), ClientError> {
    match needed.iter().find(|k| !keys.0.contains_key(k)) {
        Some(k) => Err(ClientError::refused("kid_mismatch", format!("the license has no key for KID {k}"))),
        None => Ok(()),
    }
}
