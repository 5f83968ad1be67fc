//! The device registry: devices (owner, public keys, generation, state), domains and their
//! members, and the replay table. Two stores behind one [`Registry`] trait: embedded SQLite
//! (the default, `sqlite:state/devices.sqlite3`) and PostgreSQL (`postgres://…`), with the SQL
//! migrations of `migrations/{sqlite,postgres}/` applied at open.
//!
//! Every operation is one transaction that re-checks what the caller verified (state,
//! generation, owner), records the request's `jti` and applies the change, or changes nothing:
//! a refusal writes nothing, and a crash leaves the previous or the next state. The decisions
//! themselves are the pure functions below, shared by both stores, so SQLite and PostgreSQL
//! cannot disagree on what a request may do.

pub mod postgres;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::jose::Jwk;
use super::DeviceError;

/// A boxed registry future.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, DeviceError>> + Send + 'a>>;

/// Lifecycle of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Registered and entitled to new licenses.
    Active,
    /// Factory reset: its generation is dead until it registers again.
    Reset,
    /// Unregistered by its owner, for good.
    Revoked,
}

impl DeviceState {
    /// Column value.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Active => "active",
            DeviceState::Reset => "reset",
            DeviceState::Revoked => "revoked",
        }
    }

    /// From a column value.
    pub fn parse(s: &str) -> Option<DeviceState> {
        match s {
            "active" => Some(DeviceState::Active),
            "reset" => Some(DeviceState::Reset),
            "revoked" => Some(DeviceState::Revoked),
            _ => None,
        }
    }
}

/// What a device's last token unlocked (jobs cannot re-verify tokens): policies, an optional
/// asset or key-id scope (from `asset_claim` / `kid_claim`), until when.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entitlement {
    /// Policies the token entitles to.
    pub policies: Vec<String>,
    /// Asset ids the token was scoped to, if it was.
    #[serde(default)]
    pub assets: Option<Vec<String>>,
    /// Key ids (hex) the token was scoped to, if it was.
    #[serde(default)]
    pub kids: Option<Vec<String>>,
    /// Unix time after which no new license is issued (token `exp` + grace).
    #[serde(skip)]
    pub until: i64,
}

/// One device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceRecord {
    /// Client-made UUID.
    pub id: String,
    /// Owner: the `sub` of the registering token.
    pub subject: String,
    /// ECDH key (licenses are wrapped to it).
    pub enc: Jwk,
    /// ECDSA key (verifies its requests).
    pub sig: Jwk,
    /// Thumbprint of `enc` (unique).
    pub thumb: String,
    /// Generation: 1 at first registration, +1 at each re-registration after a reset.
    pub gen: u64,
    /// Lifecycle.
    pub state: DeviceState,
    /// Chaining client (issue 11).
    pub chain: bool,
    /// Entitlement snapshot.
    pub entitlement: Entitlement,
    /// Registered at (Unix seconds).
    pub created: i64,
}

/// One domain with its current members (device ids, sorted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainRecord {
    /// UUID.
    pub id: String,
    /// Owner.
    pub subject: String,
    /// Key version: +1 whenever a member leaves, so the departed member's key opens nothing new.
    pub kv: u64,
    /// Member device ids.
    pub members: Vec<String>,
}

/// A request's replay identity: its `jti`, remembered until `expires`.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The request's `jti`.
    pub jti: String,
    /// When it may be forgotten (its `iat` + skew).
    pub expires: i64,
}

/// Who asks for a change.
#[derive(Debug, Clone)]
pub enum Actor {
    /// The device itself (verified request of generation `gen`), with the token's subject when
    /// a token came along.
    Device {
        /// Generation the request was signed for.
        gen: u64,
        /// Subject of the accompanying token, if any.
        subject: Option<String>,
    },
    /// The owner, by token.
    Owner {
        /// Token subject.
        subject: String,
    },
}

/// Outcome of a registration.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The device as stored.
    pub device: DeviceRecord,
    /// True when the same device (same id and keys) was already registered: a retry after a
    /// lost answer, answered with the same certificate generation.
    pub existing: bool,
}

/// A device whose state changed, and the domains it left on the way (with their new key
/// versions).
#[derive(Debug, Clone)]
pub struct Changed {
    /// The device after the change.
    pub device: DeviceRecord,
    /// Domains it was removed from, as they are now (`kv` bumped; no members: deleted).
    pub domains: Vec<DomainRecord>,
}

/// The registry operations. Each is one transaction.
pub trait Registry: Send + Sync {
    /// Which store (for logs and /metrics).
    fn kind(&self) -> &'static str;
    /// One device by id.
    fn device(&self, id: &str) -> Fut<'_, Option<DeviceRecord>>;
    /// Registers `new` (gen and state are decided here), unless refused.
    fn register(&self, new: DeviceRecord, replay: Replay, limit: usize) -> Fut<'_, Registered>;
    /// Stores a fresh entitlement snapshot for an active device of generation `gen`.
    fn refresh(&self, id: &str, gen: u64, ent: Entitlement, replay: Replay) -> Fut<'_, DeviceRecord>;
    /// Factory reset: the device's generation ends; it leaves its domains.
    fn reset(&self, id: &str, actor: Actor, replay: Option<Replay>) -> Fut<'_, Changed>;
    /// Revocation by the owner: for good; it leaves its domains.
    fn revoke(&self, id: &str, subject: &str) -> Fut<'_, Changed>;
    /// Joins domain `domain` (or creates domain `new_id` when `None`) as device `id`.
    #[allow(clippy::too_many_arguments)]
    fn join(
        &self,
        id: &str,
        gen: u64,
        subject: &str,
        domain: Option<String>,
        new_id: String,
        max_members: usize,
        replay: Replay,
    ) -> Fut<'_, DomainRecord>;
    /// Device `id` leaves `domain`: the key version is bumped (an empty domain is deleted).
    fn leave(&self, id: &str, domain: &str, actor: Actor, replay: Option<Replay>) -> Fut<'_, DomainRecord>;
    /// Every active device.
    fn active_devices(&self) -> Fut<'_, Vec<DeviceRecord>>;
    /// Every domain.
    fn domains(&self) -> Fut<'_, Vec<DomainRecord>>;
    /// Domains `id` is a member of.
    fn domains_of(&self, id: &str) -> Fut<'_, Vec<DomainRecord>>;
    /// Forgets `jti`s that expired before `now`.
    fn purge_seen(&self, now: i64) -> Fut<'_, u64>;
}

/// Opens the registry named by `url`: `sqlite:PATH` (or a bare path) or `postgres://…`.
pub async fn open(url: &str) -> Result<Arc<dyn Registry>, DeviceError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(postgres::PostgresRegistry::open(url).await?))
    } else {
        let path = url.strip_prefix("sqlite:").unwrap_or(url).to_owned();
        let r = tokio::task::spawn_blocking(move || sqlite::SqliteRegistry::open(std::path::Path::new(&path)))
            .await
            .map_err(|e| DeviceError::Unavailable(e.to_string()))??;
        Ok(Arc::new(r))
    }
}

// ------------------------------------------------------------------------------------------------
// Decisions shared by both stores

/// What a registration does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegisterAction {
    /// A new row, generation 1.
    Insert,
    /// The same device again: nothing to write but the jti.
    Existing,
    /// A reset device registers again with new keys: generation + 1.
    Replace {
        /// The new generation.
        gen: u64,
    },
}

/// Decides a registration from what the store holds: the row with that id, whether another
/// device has these keys, and how many active devices the subject has besides this one.
pub(crate) fn decide_register(
    existing: Option<&DeviceRecord>,
    new: &DeviceRecord,
    key_taken_elsewhere: bool,
    active_for_subject: usize,
    limit: usize,
) -> Result<RegisterAction, DeviceError> {
    if key_taken_elsewhere {
        return Err(DeviceError::KeyTaken);
    }
    match existing {
        None if active_for_subject >= limit => Err(DeviceError::LimitReached),
        None => Ok(RegisterAction::Insert),
        Some(e) if e.subject != new.subject => Err(DeviceError::IdTaken),
        Some(e) => match e.state {
            DeviceState::Revoked => Err(DeviceError::Revoked),
            DeviceState::Active if e.enc == new.enc && e.sig == new.sig => Ok(RegisterAction::Existing),
            DeviceState::Active => Err(DeviceError::IdTaken),
            DeviceState::Reset if active_for_subject >= limit => Err(DeviceError::LimitReached),
            DeviceState::Reset => Ok(RegisterAction::Replace { gen: e.gen.saturating_add(1) }),
        },
    }
}

/// Whether `actor` may act on device `d` (re-checked inside each transaction).
pub(crate) fn check_actor(d: &DeviceRecord, actor: &Actor) -> Result<(), DeviceError> {
    match actor {
        Actor::Owner { subject } if *subject != d.subject => Err(DeviceError::UnknownDevice),
        Actor::Device { subject: Some(s), .. } if *s != d.subject => Err(DeviceError::UnknownDevice),
        _ if d.state == DeviceState::Revoked => Err(DeviceError::Revoked),
        Actor::Device { gen, .. } if d.state == DeviceState::Reset || d.gen != *gen => {
            Err(DeviceError::StaleGeneration)
        }
        _ => Ok(()),
    }
}

/// Whether a join is allowed: the domain (if named) is the subject's and has room.
pub(crate) fn check_join(
    domain: Option<&DomainRecord>,
    subject: &str,
    device: &str,
    max: usize,
) -> Result<bool, DeviceError> {
    match domain {
        None => Ok(true),
        Some(d) if d.subject != subject => Err(DeviceError::UnknownDomain),
        Some(d) if d.members.iter().any(|m| m == device) => Ok(false),
        Some(d) if d.members.len() >= max => Err(DeviceError::DomainFull),
        Some(_) => Ok(true),
    }
}

/// A value that must fit an `i64` column.
pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A non-negative `i64` column.
pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The row form shared by both stores: JSON keys and the entitlement snapshot.
pub(crate) struct Row {
    pub id: String,
    pub subject: String,
    pub enc: String,
    pub sig: String,
    pub thumb: String,
    pub gen: i64,
    pub state: String,
    pub chain: bool,
    pub entitlement: String,
    pub entitled_until: i64,
    pub created: i64,
}

impl Row {
    pub(crate) fn of(d: &DeviceRecord) -> Row {
        Row {
            id: d.id.clone(),
            subject: d.subject.clone(),
            enc: d.enc.to_json().to_string(),
            sig: d.sig.to_json().to_string(),
            thumb: d.thumb.clone(),
            gen: to_i64(d.gen),
            state: d.state.as_str().to_owned(),
            chain: d.chain,
            entitlement: serde_json::to_string(&d.entitlement).unwrap_or_else(|_| "{\"policies\":[]}".into()),
            entitled_until: d.entitlement.until,
            created: d.created,
        }
    }

    pub(crate) fn record(self) -> Result<DeviceRecord, DeviceError> {
        let corrupt = |what: &str| DeviceError::Internal(format!("registry row {}: bad {what}", self.id));
        let key = |s: &str, what: &str| -> Result<Jwk, DeviceError> {
            let v: serde_json::Value = serde_json::from_str(s).map_err(|_| corrupt(what))?;
            Jwk::parse(&v).map_err(|_| corrupt(what))
        };
        let mut entitlement: Entitlement =
            serde_json::from_str(&self.entitlement).map_err(|_| corrupt("entitlement"))?;
        entitlement.until = self.entitled_until;
        Ok(DeviceRecord {
            enc: key(&self.enc, "enc")?,
            sig: key(&self.sig, "sig")?,
            state: DeviceState::parse(&self.state).ok_or_else(|| corrupt("state"))?,
            gen: to_u64(self.gen),
            entitlement,
            id: self.id,
            subject: self.subject,
            thumb: self.thumb,
            chain: self.chain,
            created: self.created,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::license::device::jose::{Drbg, PrivateKey};

    pub(crate) fn device(id: &str, subject: &str, seed: &str) -> DeviceRecord {
        let d = Drbg::new(seed.as_bytes(), b"registry tests");
        let enc = PrivateKey(d.secret_key(b"enc").unwrap()).public();
        let sig = PrivateKey(d.secret_key(b"sig").unwrap()).public();
        DeviceRecord {
            id: id.into(),
            subject: subject.into(),
            thumb: enc.thumbprint(),
            enc,
            sig,
            gen: 1,
            state: DeviceState::Active,
            chain: false,
            entitlement: Entitlement { policies: vec!["p".into()], assets: None, kids: None, until: 100 },
            created: 1,
        }
    }

    #[test]
    fn register_decisions() {
        let a = device("a", "alice", "a");
        assert_eq!(decide_register(None, &a, false, 0, 2), Ok(RegisterAction::Insert));
        assert_eq!(decide_register(None, &a, false, 2, 2), Err(DeviceError::LimitReached));
        assert_eq!(decide_register(None, &a, true, 0, 2), Err(DeviceError::KeyTaken));
        assert_eq!(decide_register(Some(&a), &a, false, 1, 2), Ok(RegisterAction::Existing));
        let other_keys = device("a", "alice", "b");
        assert_eq!(decide_register(Some(&a), &other_keys, false, 1, 2), Err(DeviceError::IdTaken));
        let bob = device("a", "bob", "a");
        assert_eq!(decide_register(Some(&a), &bob, false, 0, 2), Err(DeviceError::IdTaken));
        let mut reset = a.clone();
        reset.state = DeviceState::Reset;
        assert_eq!(decide_register(Some(&reset), &other_keys, false, 0, 2), Ok(RegisterAction::Replace { gen: 2 }));
        let mut revoked = a.clone();
        revoked.state = DeviceState::Revoked;
        assert_eq!(decide_register(Some(&revoked), &a, false, 0, 2), Err(DeviceError::Revoked));
    }

    #[test]
    fn actor_decisions() {
        let mut d = device("a", "alice", "a");
        assert!(check_actor(&d, &Actor::Device { gen: 1, subject: None }).is_ok());
        assert_eq!(check_actor(&d, &Actor::Device { gen: 0, subject: None }), Err(DeviceError::StaleGeneration));
        let bob = Actor::Owner { subject: "bob".into() };
        assert_eq!(check_actor(&d, &bob), Err(DeviceError::UnknownDevice), "another subject's id looks unknown");
        d.state = DeviceState::Reset;
        assert_eq!(check_actor(&d, &Actor::Device { gen: 1, subject: None }), Err(DeviceError::StaleGeneration));
        assert!(check_actor(&d, &Actor::Owner { subject: "alice".into() }).is_ok());
        d.state = DeviceState::Revoked;
        assert_eq!(check_actor(&d, &Actor::Device { gen: 1, subject: None }), Err(DeviceError::Revoked));
    }
}
