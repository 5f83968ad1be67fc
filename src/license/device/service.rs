//! The device-licensing operations behind the endpoints, independent of HTTP: each takes the
//! verified token (if any) and the signed device request, checks them in a fixed order, runs one
//! registry transaction, updates the license folder, and answers JSON or a [`DeviceError`].
//!
//! Order of checks for a device request: shape (400) → token (401/403) → device known and the
//! token's subject owns it (404) → not revoked (403) → generation current (409) → signature
//! (401) → the operation itself, whose transaction re-checks all this and records the `jti`
//! (409 on replay). A refusal writes nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

use super::issue::{self, AssetEntry};
use super::jose::{Jwk, Jws};
use super::keys::OriginKeys;
use super::objects::{self, typ, Act, DeviceRequest, V};
use super::registry::{self, Actor, DeviceRecord, DeviceState, DomainRecord, Entitlement, Registry, Replay};
use super::writer::{self, Report, Writer};
use super::{unix_now, DeviceError};
use crate::drm::{DeviceLicenses, Drm};
use crate::license::{Claims, Denied, Verifier};

/// `[devices]` and `[licenses]`, validated.
#[derive(Clone)]
pub struct DeviceSettings {
    /// `sqlite:PATH` or `postgres://…` (may hold a password: never logged).
    pub registry_url: String,
    /// Master secret file.
    pub secret_file: PathBuf,
    /// Signing keyring file.
    pub signing_key: PathBuf,
    /// Active devices per subject.
    pub max_devices_per_subject: usize,
    /// Members per domain.
    pub max_domain_members: usize,
    /// Allowed clock skew of device requests.
    pub request_skew_secs: i64,
    /// Claims a token must have to register a device.
    pub register_claims: BTreeMap<String, String>,
    /// Licenses are issued until the registering/renewing token's `exp` + this.
    pub entitlement_grace_secs: i64,
    /// The license folder.
    pub licenses_dir: PathBuf,
    /// Validity period of direct licenses.
    pub direct_ttl_secs: i64,
    /// How often `serve` regenerates the whole folder (renewals, new assets, key changes).
    pub regenerate_every: Duration,
    /// Public base URL of the folder's `public/` (returned at registration), if known.
    pub public_url: Option<String>,
    /// fsync files and folders (off only for benchmarks on throwaway disks).
    pub fsync: bool,
}

impl std::fmt::Debug for DeviceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The registry URL may carry a database password: only its scheme and host are shown.
        let url = &self.registry_url;
        let shown = match url.split_once("://") {
            Some((scheme, rest)) => {
                let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                format!("{scheme}://{}", host.split(['/', '?']).next().unwrap_or(""))
            }
            None => url.clone(),
        };
        f.debug_struct("DeviceSettings")
            .field("registry", &shown)
            .field("licenses_dir", &self.licenses_dir)
            .field("direct_ttl_secs", &self.direct_ttl_secs)
            .finish_non_exhaustive()
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct DeviceMetrics {
    /// Successful registrations.
    pub registrations: AtomicU64,
    /// Online licenses issued.
    pub licenses: AtomicU64,
    /// Files written to the license folder.
    pub files_written: AtomicU64,
    /// Refusals by reason.
    pub refusals: Mutex<BTreeMap<&'static str, u64>>,
}

/// A catalog with the (library pointer, configuration generation) it was made for.
type CachedCatalog = (usize, u64, Arc<Vec<AssetEntry>>);

/// The device-licensing service of one origin.
pub struct Devices {
    /// Settings.
    pub settings: DeviceSettings,
    /// Master secret and signing keys.
    pub keys: OriginKeys,
    /// Devices, domains, replay table.
    pub registry: Arc<dyn Registry>,
    /// The license folder.
    pub writer: Writer,
    /// Counters.
    pub metrics: DeviceMetrics,
    /// The last catalog, by (library, configuration generation).
    catalog_cache: Mutex<Option<CachedCatalog>>,
}

impl std::fmt::Debug for Devices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Devices")
            .field("registry", &self.registry.kind())
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// An answer: status class (created or not) and JSON body.
#[derive(Debug)]
pub struct Answer {
    /// 201 rather than 200.
    pub created: bool,
    /// The body.
    pub body: Value,
}

fn ok(body: Value) -> Answer {
    Answer { created: false, body }
}

fn internal<E: std::fmt::Display>(e: E) -> DeviceError {
    DeviceError::Internal(e.to_string())
}

impl Devices {
    /// Loads (or creates) the keys, opens the registry and the folder.
    pub async fn open(settings: DeviceSettings) -> Result<Arc<Devices>, String> {
        let keys =
            OriginKeys::load_or_create(&settings.secret_file, &settings.signing_key).map_err(|e| e.to_string())?;
        let registry = registry::open(&settings.registry_url).await.map_err(|e| format!("device registry: {e}"))?;
        let writer =
            Writer::open(&settings.licenses_dir, settings.fsync).map_err(|e| format!("license folder: {e}"))?;
        Ok(Arc::new(Devices {
            settings,
            keys,
            registry,
            writer,
            metrics: DeviceMetrics::default(),
            catalog_cache: Mutex::new(None),
        }))
    }

    /// The assets device licenses are issued for, computed once per library snapshot and
    /// configuration generation (`drm_gen`).
    pub fn catalog(&self, library: &Arc<crate::storage::Library>, drm: &Drm, drm_gen: u64) -> Arc<Vec<AssetEntry>> {
        let key = Arc::as_ptr(library) as usize;
        let mut cache = self.catalog_cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, g, c)) = cache.as_ref() {
            if *k == key && *g == drm_gen {
                return c.clone();
            }
        }
        let c = Arc::new(issue::catalog(library, drm));
        *cache = Some((key, drm_gen, c.clone()));
        c
    }

    /// Counts a refusal (for `/metrics`).
    pub fn refused(&self, e: &DeviceError) {
        let mut m = self.metrics.refusals.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(e.reason()).or_insert(0);
        *n = n.saturating_add(1);
    }

    /// `/metrics` lines.
    pub fn metrics_text(&self) -> String {
        let m = &self.metrics;
        let mut x = String::new();
        for (name, help, v) in [
            ("origin_device_registrations_total", "Devices registered.", &m.registrations),
            ("origin_device_licenses_total", "Direct licenses issued online.", &m.licenses),
            ("origin_license_files_written_total", "Files written to the license folder.", &m.files_written),
        ] {
            x.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n", v.load(Relaxed)));
        }
        x.push_str("# HELP origin_device_refusals_total Device-licensing refusals by reason.\n");
        x.push_str("# TYPE origin_device_refusals_total counter\n");
        for (reason, n) in m.refusals.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            x.push_str(&format!("origin_device_refusals_total{{reason=\"{reason}\"}} {n}\n"));
        }
        x
    }

    fn replay(&self, r: &DeviceRequest) -> Replay {
        Replay {
            jti: format!("{}:{}", r.dev, r.jti),
            expires: r.iat.saturating_add(self.settings.request_skew_secs).saturating_add(1),
        }
    }

    /// Parses and checks the shape of a device request for `act` (signature not checked yet).
    pub fn parse_request(&self, compact: &str, act: Act) -> Result<(Jws, DeviceRequest), DeviceError> {
        let jws = Jws::parse(compact).map_err(|_| DeviceError::Malformed("request is not a compact ES256 JWS"))?;
        if jws.header.typ != typ::REQUEST {
            return Err(DeviceError::Malformed("request typ"));
        }
        let r: DeviceRequest = jws.payload_as().map_err(|_| DeviceError::Malformed("request payload"))?;
        if r.v != V {
            return Err(DeviceError::Malformed("request version"));
        }
        if r.act != act || r.aud != act.path() {
            return Err(DeviceError::Malformed("request act/aud is for another endpoint"));
        }
        if !objects::valid_id(&r.dev) || jws.header.kid.as_deref() != Some(r.dev.as_str()) {
            return Err(DeviceError::Malformed("device id"));
        }
        if !objects::valid_jti(&r.jti) {
            return Err(DeviceError::Malformed("jti"));
        }
        if unix_now().abs_diff(r.iat) > self.settings.request_skew_secs.unsigned_abs() {
            return Err(DeviceError::StaleRequest);
        }
        Ok((jws, r))
    }

    /// Looks up and authenticates the device of a parsed request.
    async fn authenticate(
        &self,
        jws: &Jws,
        r: &DeviceRequest,
        subject: Option<&str>,
    ) -> Result<DeviceRecord, DeviceError> {
        let d = self.registry.device(&r.dev).await?.ok_or(DeviceError::UnknownDevice)?;
        let gen = r.gen.ok_or(DeviceError::Malformed("gen"))?;
        registry::check_actor(&d, &Actor::Device { gen, subject: subject.map(str::to_owned) })?;
        jws.verify(&d.sig).map_err(|_| DeviceError::BadSignature)?;
        Ok(d)
    }

    /// The subject of verified claims.
    fn subject(claims: &Claims) -> Result<String, DeviceError> {
        claims
            .0
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty() && s.len() <= 256)
            .map(str::to_owned)
            .ok_or(DeviceError::Token(Denied::Unauthorized("missing_subject")))
    }

    /// The entitlement snapshot of a verified token: every policy with device licenses it
    /// unlocks, its asset/kid scope, and `exp` + grace.
    pub fn entitlement(&self, v: &Verifier, claims: &Claims, drm: &Drm) -> Entitlement {
        let mut policies: Vec<String> = drm
            .rules
            .iter()
            .map(|(_, p)| p.clone())
            .chain(std::iter::once(drm.default_policy.clone()))
            .filter(|p| p.device_licenses != DeviceLicenses::None && v.entitles_policy(claims, &p.name).is_ok())
            .map(|p| p.name.clone())
            .collect();
        policies.sort();
        policies.dedup();
        let exp = claims.0.get("exp").and_then(Value::as_i64).unwrap_or(0);
        Entitlement {
            policies,
            assets: v.config.asset_claim.as_ref().and_then(|n| Verifier::claim_strings(claims, n)),
            kids: v.config.kid_claim.as_ref().and_then(|n| Verifier::claim_strings(claims, n)),
            until: exp.saturating_add(self.settings.entitlement_grace_secs),
        }
    }

    /// `POST /.drm/device/register`.
    pub async fn register(
        self: &Arc<Self>,
        claims: Option<Result<Claims, Denied>>,
        request: &str,
        drm: &Drm,
        catalog: Arc<Vec<AssetEntry>>,
    ) -> Result<Answer, DeviceError> {
        let (jws, r) = self.parse_request(request, Act::Register)?;
        let claims = claims.unwrap_or(Err(Denied::Unauthorized("missing_token"))).map_err(DeviceError::Token)?;
        let v = drm
            .verifier
            .as_ref()
            .ok_or(DeviceError::Token(Denied::Unauthorized("no_token_verification_configured")))?;
        let subject = Self::subject(&claims)?;
        let required = v.config.required_claims.iter().chain(&self.settings.register_claims);
        for (name, want) in required {
            if !Verifier::has_claim(&claims, name, want) {
                return Err(DeviceError::Token(Denied::Forbidden("missing_required_claim")));
            }
        }
        let key = |v: &Option<Value>, what| -> Result<Jwk, DeviceError> {
            Jwk::parse(v.as_ref().ok_or(DeviceError::MalformedKey(what))?).map_err(|_| DeviceError::MalformedKey(what))
        };
        let (enc, sig) = (key(&r.enc, "enc")?, key(&r.sig, "sig")?);
        if enc == sig {
            return Err(DeviceError::MalformedKey("enc and sig must be different keys"));
        }
        jws.verify(&sig).map_err(|_| DeviceError::BadSignature)?;
        let now = unix_now();
        let new = DeviceRecord {
            id: r.dev.clone(),
            subject,
            thumb: enc.thumbprint(),
            enc,
            sig,
            gen: 1,
            state: DeviceState::Active,
            chain: r.chain.unwrap_or(false),
            entitlement: self.entitlement(v, &claims, drm),
            created: now,
        };
        let reg = self.registry.register(new, self.replay(&r), self.settings.max_devices_per_subject).await?;
        let d = reg.device;
        let certificate = issue::certificate(&self.keys, &d, now)?;
        self.metrics.registrations.fetch_add(1, Relaxed);
        tracing::info!(device = %d.id, gen = d.gen, retry = reg.existing, "device registered");
        // The folder is written before the answer, so the client finds its licenses at once; a
        // failure here is logged and repaired by the next regeneration (the device is registered).
        let domains = self.registry.domains_of(&d.id).await.unwrap_or_default();
        self.write_device_folder(d.clone(), domains, catalog).await;
        let path = format!("{}/index.json", writer::device_folder(&d.id, d.gen));
        let origin_keys: Value = serde_json::from_str(self.keys.jwks_json()).unwrap_or(Value::Null);
        Ok(Answer {
            created: !reg.existing,
            body: json!({
                "device_id": d.id,
                "gen": d.gen,
                "certificate": certificate,
                "licenses_path": path,
                "licenses_url": self.settings.public_url.as_ref().map(|u| format!("{}/{path}", u.trim_end_matches('/'))),
                "origin_keys": origin_keys,
            }),
        })
    }

    /// `POST /.drm/license`: a direct license now (the same bytes as the period's static file),
    /// and a fresh entitlement snapshot.
    pub async fn license(
        self: &Arc<Self>,
        claims: Option<Result<Claims, Denied>>,
        request: &str,
        drm: &Drm,
        catalog: Arc<Vec<AssetEntry>>,
    ) -> Result<Answer, DeviceError> {
        let (jws, r) = self.parse_request(request, Act::License)?;
        let claims = claims.unwrap_or(Err(Denied::Unauthorized("missing_token"))).map_err(DeviceError::Token)?;
        let v = drm
            .verifier
            .as_ref()
            .ok_or(DeviceError::Token(Denied::Unauthorized("no_token_verification_configured")))?;
        let subject = Self::subject(&claims)?;
        let asset = r.asset.clone().ok_or(DeviceError::Malformed("asset"))?;
        let d = self.authenticate(&jws, &r, Some(&subject)).await?;
        let entry = catalog.iter().find(|e| e.id == asset).ok_or(DeviceError::UnknownAsset)?;
        let ent = self.entitlement(v, &claims, drm);
        let now = unix_now();
        if !issue::entitled(&ent, entry, now) {
            let why = if !ent.policies.contains(&entry.policy) {
                v.entitles_policy(&claims, &entry.policy).err().unwrap_or(Denied::Forbidden("not_entitled"))
            } else if ent.kids.is_some() && ent.assets.as_ref().is_none_or(|a| a.contains(&entry.id)) {
                Denied::Forbidden("token_bound_to_other_kid")
            } else {
                Denied::Forbidden("token_bound_to_other_asset")
            };
            return Err(DeviceError::Token(why));
        }
        // Domain-bound: only for a member, with the domain's entitlement (as its folder has it).
        let domain = match &r.domain {
            None => None,
            Some(id) => {
                let doms = self.registry.domains_of(&d.id).await?;
                Some(doms.into_iter().find(|x| x.id == *id).ok_or(DeviceError::WrongDomain)?)
            }
        };
        let gen = r.gen.unwrap_or(d.gen);
        let d = self.registry.refresh(&d.id, gen, ent, self.replay(&r)).await?;
        let (bind, to, until) = match &domain {
            None => (issue::device_binding(&d), d.enc.clone(), d.entitlement.until),
            Some(dom) => {
                let (bind, public) = issue::domain_binding(&self.keys, dom)?;
                let members = self.members(dom).await?;
                let ents: Vec<&Entitlement> = members.iter().map(|m| &m.entitlement).collect();
                (bind, public, issue::union(&ents).until)
            }
        };
        let period = issue::period(now, self.settings.direct_ttl_secs, until)
            .ok_or(DeviceError::Token(Denied::Forbidden("entitlement_expired")))?;
        let planned = issue::plan_license(&self.keys, entry, &bind, &to, period);
        let license = planned.build(&self.keys)?;
        self.metrics.licenses.fetch_add(1, Relaxed);
        let folder = match &domain {
            None => writer::device_folder(&d.id, d.gen),
            Some(dom) => writer::domain_folder(&dom.id, dom.kv),
        };
        // A changed entitlement changes the folder too.
        let domains = self.registry.domains_of(&d.id).await.unwrap_or_default();
        let me = self.clone();
        tokio::spawn(async move { me.write_device_folder(d, domains, catalog).await });
        Ok(ok(json!({"license": license, "path": format!("{folder}/a/{asset}.lic")})))
    }

    /// `POST /.drm/root` (issue 11): the root licenses of every chained policy the token
    /// entitles to, bound to the device, for the current period (the same bytes as the period's
    /// static files); the entitlement snapshot is refreshed, so this is also the renewal: the
    /// same root key with a later `exp`.
    pub async fn root(
        self: &Arc<Self>,
        claims: Option<Result<Claims, Denied>>,
        request: &str,
        drm: &Drm,
        catalog: Arc<Vec<AssetEntry>>,
    ) -> Result<Answer, DeviceError> {
        let (jws, r) = self.parse_request(request, Act::Root)?;
        let claims = claims.unwrap_or(Err(Denied::Unauthorized("missing_token"))).map_err(DeviceError::Token)?;
        let v = drm
            .verifier
            .as_ref()
            .ok_or(DeviceError::Token(Denied::Unauthorized("no_token_verification_configured")))?;
        let subject = Self::subject(&claims)?;
        let d = self.authenticate(&jws, &r, Some(&subject)).await?;
        let ent = self.entitlement(v, &claims, drm);
        let now = unix_now();
        let gen = r.gen.unwrap_or(d.gen);
        let bind = issue::device_binding(&d);
        let period = issue::period(now, self.settings.direct_ttl_secs, ent.until)
            .ok_or(DeviceError::Token(Denied::Forbidden("entitlement_expired")))?;
        let planned = issue::plan_roots(&self.keys, &catalog, &ent, &bind, &d.enc, period, now);
        if planned.is_empty() {
            return Err(DeviceError::Token(Denied::Forbidden("not_entitled")));
        }
        let d = self.registry.refresh(&d.id, gen, ent, self.replay(&r)).await?;
        let mut roots = Vec::new();
        for (_, p) in &planned {
            roots.push(Value::String(p.build(&self.keys)?));
        }
        self.metrics.licenses.fetch_add(1, Relaxed);
        let domains = self.registry.domains_of(&d.id).await.unwrap_or_default();
        let me = self.clone();
        tokio::spawn(async move { me.write_device_folder(d, domains, catalog).await });
        Ok(ok(json!({"roots": roots})))
    }

    /// `POST /.drm/device/reset`: by the device (signed request) or its owner (token + id).
    pub async fn reset(
        self: &Arc<Self>,
        claims: Option<Result<Claims, Denied>>,
        request: Option<&str>,
        device_id: Option<&str>,
        catalog: Arc<Vec<AssetEntry>>,
    ) -> Result<Answer, DeviceError> {
        let changed = match (request, device_id) {
            (Some(req), _) => {
                let (jws, r) = self.parse_request(req, Act::Reset)?;
                let subject = match claims {
                    None => None,
                    Some(c) => Some(Self::subject(&c.map_err(DeviceError::Token)?)?),
                };
                let d = self.authenticate(&jws, &r, subject.as_deref()).await?;
                let actor = Actor::Device { gen: d.gen, subject };
                self.registry.reset(&d.id, actor, Some(self.replay(&r))).await?
            }
            (None, Some(id)) => {
                let claims =
                    claims.unwrap_or(Err(Denied::Unauthorized("missing_token"))).map_err(DeviceError::Token)?;
                let subject = Self::subject(&claims)?;
                if !objects::valid_id(id) {
                    return Err(DeviceError::Malformed("device_id"));
                }
                self.registry.reset(id, Actor::Owner { subject }, None).await?
            }
            (None, None) => return Err(DeviceError::Malformed("a signed request or a device_id")),
        };
        tracing::info!(device = %changed.device.id, gen = changed.device.gen, "device reset");
        self.after_removal(&changed.device.id, changed.domains, catalog).await;
        Ok(ok(json!({"device_id": changed.device.id, "state": "reset", "gen": changed.device.gen})))
    }

    /// `POST /.drm/device/unregister`: the owner revokes a device for good.
    pub async fn unregister(
        self: &Arc<Self>,
        claims: Option<Result<Claims, Denied>>,
        device_id: Option<&str>,
        catalog: Arc<Vec<AssetEntry>>,
    ) -> Result<Answer, DeviceError> {
        let claims = claims.unwrap_or(Err(Denied::Unauthorized("missing_token"))).map_err(DeviceError::Token)?;
        let subject = Self::subject(&claims)?;
        let id = device_id.ok_or(DeviceError::Malformed("device_id"))?;
        if !objects::valid_id(id) {
            return Err(DeviceError::Malformed("device_id"));
        }
        let changed = self.registry.revoke(id, &subject).await?;
        tracing::info!(device = %id, "device revoked");
        self.after_removal(id, changed.domains, catalog).await;
        Ok(ok(json!({"device_id": id, "state": "revoked"})))
    }

    /// `POST /.drm/domain/join`.
    pub async fn join(
        self: &Arc<Self>,
        claims: Option<Result<Claims, Denied>>,
        request: &str,
        catalog: Arc<Vec<AssetEntry>>,
    ) -> Result<Answer, DeviceError> {
        let (jws, r) = self.parse_request(request, Act::Join)?;
        let claims = claims.unwrap_or(Err(Denied::Unauthorized("missing_token"))).map_err(DeviceError::Token)?;
        let subject = Self::subject(&claims)?;
        if r.domain.as_deref().is_some_and(|d| !objects::valid_id(d)) {
            return Err(DeviceError::Malformed("domain"));
        }
        let d = self.authenticate(&jws, &r, Some(&subject)).await?;
        let new_id = objects::new_uuid().map_err(internal)?;
        let dom = self
            .registry
            .join(&d.id, d.gen, &subject, r.domain.clone(), new_id, self.settings.max_domain_members, self.replay(&r))
            .await?;
        tracing::info!(device = %d.id, domain = %dom.id, kv = dom.kv, "device joined a domain");
        self.write_domain_and_members(&dom, catalog).await;
        let dkey = issue::plan_domain_key(&self.keys, &dom, &d).build(&self.keys)?;
        Ok(ok(json!({
            "domain_id": dom.id,
            "key_version": dom.kv,
            "domain_key": dkey,
            "domain_path": format!("{}/index.json", writer::domain_folder(&dom.id, dom.kv)),
        })))
    }

    /// `POST /.drm/domain/leave`: by the device (signed request) or its owner (token + ids).
    pub async fn leave(
        self: &Arc<Self>,
        claims: Option<Result<Claims, Denied>>,
        request: Option<&str>,
        device_id: Option<&str>,
        domain: Option<&str>,
        catalog: Arc<Vec<AssetEntry>>,
    ) -> Result<Answer, DeviceError> {
        let (device, domain, actor, replay) = match (request, device_id) {
            (Some(req), _) => {
                let (jws, r) = self.parse_request(req, Act::Leave)?;
                let subject = match claims {
                    None => None,
                    Some(c) => Some(Self::subject(&c.map_err(DeviceError::Token)?)?),
                };
                let d = self.authenticate(&jws, &r, subject.as_deref()).await?;
                let domain = r.domain.clone().ok_or(DeviceError::Malformed("domain"))?;
                (d.id.clone(), domain, Actor::Device { gen: d.gen, subject }, Some(self.replay(&r)))
            }
            (None, Some(id)) => {
                let claims =
                    claims.unwrap_or(Err(Denied::Unauthorized("missing_token"))).map_err(DeviceError::Token)?;
                let subject = Self::subject(&claims)?;
                let domain = domain.ok_or(DeviceError::Malformed("domain"))?.to_owned();
                (id.to_owned(), domain, Actor::Owner { subject }, None)
            }
            (None, None) => return Err(DeviceError::Malformed("a signed request or a device_id")),
        };
        if !objects::valid_id(&device) || !objects::valid_id(&domain) {
            return Err(DeviceError::Malformed("ids"));
        }
        let dom = self.registry.leave(&device, &domain, actor, replay).await?;
        tracing::info!(device = %device, domain = %dom.id, kv = dom.kv, "device left a domain");
        self.after_domain_change(&dom, catalog.clone()).await;
        if let Ok(Some(d)) = self.registry.device(&device).await {
            let domains = self.registry.domains_of(&device).await.unwrap_or_default();
            self.write_device_folder(d, domains, catalog).await;
        }
        Ok(ok(json!({"domain_id": dom.id, "key_version": dom.kv})))
    }

    async fn members(&self, dom: &DomainRecord) -> Result<Vec<DeviceRecord>, DeviceError> {
        let mut out = Vec::new();
        for m in &dom.members {
            if let Some(d) = self.registry.device(m).await?.filter(|d| d.state == DeviceState::Active) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// After a reset or revocation: the device's folders go, its domains move on.
    async fn after_removal(self: &Arc<Self>, id: &str, domains: Vec<DomainRecord>, catalog: Arc<Vec<AssetEntry>>) {
        let me = self.clone();
        let id = id.to_owned();
        match tokio::task::spawn_blocking(move || me.writer.remove_device(&id)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "license folder: could not remove a device's files (next regeneration retries)")
            }
            Err(e) => tracing::error!(error = %e, "license folder: removal task failed"),
        }
        for dom in domains {
            self.after_domain_change(&dom, catalog.clone()).await;
        }
    }

    /// A domain changed (a member left): its new key version's folder, or its removal.
    async fn after_domain_change(self: &Arc<Self>, dom: &DomainRecord, catalog: Arc<Vec<AssetEntry>>) {
        if dom.members.is_empty() {
            let me = self.clone();
            let id = dom.id.clone();
            if let Ok(Err(e)) = tokio::task::spawn_blocking(move || me.writer.remove_domain(&id)).await {
                tracing::error!(error = %e, "license folder: could not remove a domain's files");
            }
            return;
        }
        self.write_domain_and_members(dom, catalog).await;
    }

    /// Writes a domain's folder and the folders of its members (their index lists it).
    async fn write_domain_and_members(self: &Arc<Self>, dom: &DomainRecord, catalog: Arc<Vec<AssetEntry>>) {
        let members = match self.members(dom).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "license folder: domain members unavailable");
                return;
            }
        };
        let me = self.clone();
        let (d, ms, cat) = (dom.clone(), members.clone(), catalog.clone());
        let ttl = self.settings.direct_ttl_secs;
        let r =
            tokio::task::spawn_blocking(move || me.writer.write_domain(&me.keys, &d, &ms, &cat, unix_now(), ttl)).await;
        self.count(r.map_err(|e| writer::WriteError::Build(internal(e))).and_then(|x| x));
        for m in members {
            let domains = self.registry.domains_of(&m.id).await.unwrap_or_default();
            self.write_device_folder(m, domains, catalog.clone()).await;
        }
    }

    /// Writes one device's folder on the blocking pool; failures are logged (the periodic
    /// regeneration repairs them).
    pub async fn write_device_folder(
        self: &Arc<Self>,
        d: DeviceRecord,
        domains: Vec<DomainRecord>,
        catalog: Arc<Vec<AssetEntry>>,
    ) {
        let me = self.clone();
        let ttl = self.settings.direct_ttl_secs;
        let r = tokio::task::spawn_blocking(move || {
            me.writer.write_device(&me.keys, &d, &domains, &catalog, unix_now(), ttl)
        })
        .await;
        self.count(r.map_err(|e| writer::WriteError::Build(internal(e))).and_then(|x| x));
    }

    fn count(&self, r: Result<Report, writer::WriteError>) {
        match r {
            Ok(rep) => {
                self.metrics.files_written.fetch_add(rep.written, Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "license folder: write failed (next regeneration retries)"),
        }
    }

    /// Regenerates the whole folder (or one device and its domains): keys.json, every active
    /// device's folder, every domain's, then removes what belongs to nobody. Stops at the first
    /// write error (a full disk), leaving complete files only.
    pub async fn regenerate(
        self: &Arc<Self>,
        catalog: Arc<Vec<AssetEntry>>,
        only: Option<&str>,
    ) -> Result<Report, writer::WriteError> {
        let devices = self.registry.active_devices().await?;
        let domains = self.registry.domains().await?;
        let me = self.clone();
        let only = only.map(str::to_owned);
        let ttl = self.settings.direct_ttl_secs;
        let report = tokio::task::spawn_blocking(move || -> Result<Report, writer::WriteError> {
            let now = unix_now();
            let mut report = me.writer.write_keys(&me.keys)?;
            let wanted = |id: &str| only.as_deref().is_none_or(|o| o == id);
            for d in devices.iter().filter(|d| wanted(&d.id)) {
                report.add(me.writer.write_device(&me.keys, d, &domains, &catalog, now, ttl)?);
            }
            for dom in domains.iter().filter(|x| only.as_deref().is_none_or(|o| x.members.iter().any(|m| m == o))) {
                report.add(me.writer.write_domain(&me.keys, dom, &devices, &catalog, now, ttl)?);
            }
            if only.is_none() {
                report.removed = report.removed.saturating_add(me.writer.sweep(&devices, &domains)?);
            }
            Ok(report)
        })
        .await
        .map_err(|e| writer::WriteError::Build(internal(e)))??;
        self.metrics.files_written.fetch_add(report.written, Relaxed);
        let _ = self.registry.purge_seen(unix_now()).await;
        Ok(report)
    }
}
