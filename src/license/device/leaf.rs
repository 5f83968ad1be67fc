//! Leaf licenses (issue 11, license chaining): an asset's content keys wrapped under its
//! policy's root key(s), carried **in the content** (a `pssh` with our own SystemID in init
//! segments, a DASH `ContentProtection`, an HLS `EXT-X-SESSION-KEY`). Only the root is bound to
//! a device or domain; renewing that one root renews every leaf.
//!
//! A leaf is a JWE in the general JSON serialization (RFC 7516 §7.2.1): content `A256GCM`, one
//! recipient `A256KW` per root-key version live when it was made (two during an overlap), each
//! with `kid` = the root's `rkid` (`{policy}.{version}`). The protected header names the asset,
//! the policy and the key ids, so GCM authenticates them; the payload is the same ClearKey key
//! set a direct license holds. It is not signed (the tag authenticates it under the root key)
//! and has no expiry of its own: the root license's `exp` gates it.
//!
//! Deterministic: the CEK and IV come from the master secret and a digest of every input, so
//! every node serves the same bytes, and the leaf (and with it the segment names that hash it)
//! changes only when a key or the set of live root versions does.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::jose::{b64d, b64e, JoseError};
use super::keys::OriginKeys;
use super::objects::{KeySet, OctKey};
use crate::drm::{ContentKey, RootKeyVersion};

pub use crate::drm::pssh::{CHAIN_SCHEME, CHAIN_SYSTEM_ID};

/// `typ` of the protected header.
pub const TYP: &str = "drm-origin/leaf+jwe";

/// Where a client gets the root a leaf needs.
pub const ROOT_PATH: &str = "/.drm/root";

/// Longest leaf accepted by a parser.
pub const MAX_LEAF: usize = 16 * 1024;

/// The root-key id of `policy` at `version`.
pub fn rkid(policy: &str, version: u32) -> String {
    format!("{policy}.{version}")
}

/// The protected header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeafHeader {
    /// `A256GCM`.
    pub enc: String,
    /// [`TYP`].
    pub typ: String,
    /// Asset id.
    pub asset: String,
    /// Policy name.
    pub pol: String,
    /// Key ids inside (hex).
    pub kids: Vec<String>,
    /// Root acquisition path.
    pub ra: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientHeader {
    alg: String,
    kid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Recipient {
    header: RecipientHeader,
    encrypted_key: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeafJwe {
    protected: String,
    recipients: Vec<Recipient>,
    iv: String,
    ciphertext: String,
    tag: String,
}

/// One content key of a leaf, with its class.
#[derive(Debug, Clone, Copy)]
pub struct LeafKey<'a> {
    /// video, sd, hd, uhd, audio or envelope.
    pub class: &'a str,
    /// The key.
    pub key: &'a ContentKey,
}

#[derive(Serialize)]
struct LeafInput<'a> {
    o: &'static str,
    asset: &'a str,
    pol: &'a str,
    roots: Vec<u32>,
    keys: Vec<(&'a str, String, String)>,
}

/// The leaf of `asset` (policy `policy`) holding `content`, wrapped under each of `roots`.
/// `None` when there is nothing to wrap or no live root.
pub fn build(
    keys: &OriginKeys,
    asset: &str,
    policy: &str,
    content: &[LeafKey<'_>],
    roots: &[RootKeyVersion],
) -> Result<Option<String>, JoseError> {
    if content.is_empty() || roots.is_empty() {
        return Ok(None);
    }
    let input = LeafInput {
        o: "leaf",
        asset,
        pol: policy,
        roots: roots.iter().map(|r| r.version).collect(),
        keys: content.iter().map(|k| (k.class, k.key.kid.hex(), crate::crypto::key::hex(k.key.key.bytes()))).collect(),
    };
    let canonical = Zeroizing::new(serde_json::to_vec(&input).map_err(|_| JoseError::Malformed("leaf input"))?);
    let drbg = keys.drbg(&canonical);
    let cek = drbg.bytes::<32>(b"leaf/cek");
    let iv = drbg.bytes::<12>(b"leaf/iv");
    let header = LeafHeader {
        enc: "A256GCM".into(),
        typ: TYP.into(),
        asset: asset.into(),
        pol: policy.into(),
        kids: content.iter().map(|k| k.key.kid.hex()).collect(),
        ra: ROOT_PATH.into(),
    };
    let protected = b64e(&serde_json::to_vec(&header).map_err(|_| JoseError::Malformed("leaf header"))?);
    let mut recipients = Vec::new();
    for r in roots {
        let kek = keys.root_key(policy, r.version);
        let mut wrapped = [0u8; 40];
        aes_kw::KwAes256::new((&*kek).into())
            .wrap_key(cek.as_ref(), &mut wrapped)
            .map_err(|_| JoseError::Malformed("key wrap"))?;
        recipients.push(Recipient {
            header: RecipientHeader { alg: "A256KW".into(), kid: rkid(policy, r.version) },
            encrypted_key: b64e(&wrapped),
        });
    }
    let set = KeySet {
        asset: asset.into(),
        keys: content
            .iter()
            .map(|k| OctKey {
                kty: "oct".into(),
                kid: b64e(&k.key.kid.0),
                k: b64e(k.key.key.bytes()),
                class: k.class.into(),
            })
            .collect(),
    };
    let plaintext = Zeroizing::new(serde_json::to_vec(&set).map_err(|_| JoseError::Malformed("leaf keys"))?);
    let sealed = Aes256Gcm::new((&*cek).into())
        .encrypt((&*iv).into(), Payload { msg: &plaintext, aad: protected.as_bytes() })
        .map_err(|_| JoseError::Malformed("encryption"))?;
    let (ct, tag) = sealed.split_at(sealed.len().saturating_sub(16));
    let jwe = LeafJwe { protected, recipients, iv: b64e(iv.as_ref()), ciphertext: b64e(ct), tag: b64e(tag) };
    serde_json::to_string(&jwe).map(Some).map_err(|_| JoseError::Malformed("leaf"))
}

/// A parsed (not yet opened) leaf.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The authenticated header.
    pub header: LeafHeader,
    jwe: LeafJwe,
}

impl Leaf {
    /// Parses a leaf (bounded; our algorithms only).
    pub fn parse(text: &[u8]) -> Result<Leaf, JoseError> {
        if text.len() > MAX_LEAF {
            return Err(JoseError::Malformed("leaf too large"));
        }
        let jwe: LeafJwe = serde_json::from_slice(text).map_err(|_| JoseError::Malformed("leaf is not a JWE"))?;
        let hb = b64d(&jwe.protected).ok_or(JoseError::Malformed("leaf header is not base64url"))?;
        let header: LeafHeader =
            serde_json::from_slice(&hb).map_err(|_| JoseError::Malformed("leaf header is not ours"))?;
        if header.typ != TYP || header.enc != "A256GCM" || jwe.recipients.iter().any(|r| r.header.alg != "A256KW") {
            return Err(JoseError::Malformed("leaf is not A256KW / A256GCM of our type"));
        }
        Ok(Leaf { header, jwe })
    }

    /// The root-key ids it is wrapped under (any one opens it).
    pub fn rkids(&self) -> Vec<String> {
        self.jwe.recipients.iter().map(|r| r.header.kid.clone()).collect()
    }

    /// Opens the leaf with the root key of `rkid`: the key set inside (which names the asset of
    /// the header again).
    pub fn open(&self, rkid: &str, root_key: &[u8; 32]) -> Result<KeySet, JoseError> {
        let r = self.jwe.recipients.iter().find(|r| r.header.kid == rkid).ok_or(JoseError::Decrypt)?;
        let wrapped = b64d(&r.encrypted_key).ok_or(JoseError::Malformed("encrypted key is not base64url"))?;
        let iv = b64d(&self.jwe.iv).ok_or(JoseError::Malformed("iv is not base64url"))?;
        let mut sealed = b64d(&self.jwe.ciphertext).ok_or(JoseError::Malformed("ciphertext is not base64url"))?;
        let tag = b64d(&self.jwe.tag).ok_or(JoseError::Malformed("tag is not base64url"))?;
        if wrapped.len() != 40 || tag.len() != 16 {
            return Err(JoseError::Malformed("wrong part sizes"));
        }
        let iv: [u8; 12] = iv.try_into().map_err(|_| JoseError::Malformed("iv"))?;
        let mut cek = Zeroizing::new([0u8; 32]);
        aes_kw::KwAes256::new(root_key.into()).unwrap_key(&wrapped, cek.as_mut()).map_err(|_| JoseError::Decrypt)?;
        sealed.extend_from_slice(&tag);
        let plain = Aes256Gcm::new((&*cek).into())
            .decrypt((&iv).into(), Payload { msg: &sealed, aad: self.jwe.protected.as_bytes() })
            .map(Zeroizing::new)
            .map_err(|_| JoseError::Decrypt)?;
        let set: KeySet = serde_json::from_slice(&plain).map_err(|_| JoseError::Malformed("leaf keys"))?;
        if set.asset != self.header.asset {
            return Err(JoseError::Malformed("leaf names another asset inside"));
        }
        Ok(set)
    }
}

/// Finds a leaf in an init segment or a lone `pssh` box (the MPD's `cenc:pssh`): the Data of
/// the first `pssh` with [`CHAIN_SYSTEM_ID`].
pub fn from_pssh(boxes: &[u8]) -> Option<Vec<u8>> {
    crate::drm::pssh::find_data(boxes, &CHAIN_SYSTEM_ID)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KeyId;

    fn keys() -> OriginKeys {
        let ring = vec![crate::license::device::jose::PrivateKey(p256::SecretKey::from_slice(&[7u8; 32]).unwrap())];
        OriginKeys::from_parts(Zeroizing::new([1u8; 32]), ring).unwrap()
    }

    fn content() -> ContentKey {
        ContentKey { name: "k".into(), kid: KeyId([0x11; 16]), key: crate::crypto::Key::new([0x22; 16]) }
    }

    #[test]
    fn deterministic_overlapping_and_refusing() {
        let k = keys();
        let c = content();
        let lk = [LeafKey { class: "video", key: &c }];
        let v1 = RootKeyVersion { version: 1, not_before: 0, not_after: 100 };
        let v2 = RootKeyVersion { version: 2, not_before: 50, not_after: i64::MAX };
        let a = build(&k, "a", "p", &lk, &[v1, v2]).unwrap().unwrap();
        assert_eq!(a, build(&k, "a", "p", &lk, &[v1, v2]).unwrap().unwrap(), "same inputs, same bytes");
        assert_ne!(a, build(&k, "a", "p", &lk, &[v2]).unwrap().unwrap(), "a rollover moves the leaf");
        let leaf = Leaf::parse(a.as_bytes()).unwrap();
        assert_eq!(leaf.rkids(), vec!["p.1", "p.2"]);
        for v in [1, 2] {
            let set = leaf.open(&rkid("p", v), &k.root_key("p", v)).unwrap();
            assert_eq!(set.keys[0].k, b64e(&[0x22; 16]));
        }
        assert_eq!(leaf.open("p.1", &k.root_key("p", 2)).unwrap_err(), JoseError::Decrypt, "wrong root key");
        assert_eq!(leaf.open("q.1", &k.root_key("q", 1)).unwrap_err(), JoseError::Decrypt, "other policy");
        // A flipped header byte (another asset named) fails at GCM.
        let mut j: serde_json::Value = serde_json::from_str(&a).unwrap();
        let h = String::from_utf8(b64d(j["protected"].as_str().unwrap()).unwrap()).unwrap().replace("\"a\"", "\"b\"");
        j["protected"] = b64e(h.as_bytes()).into();
        let t = Leaf::parse(j.to_string().as_bytes()).unwrap();
        assert_eq!(t.open("p.1", &k.root_key("p", 1)).unwrap_err(), JoseError::Decrypt);
        assert!(build(&k, "a", "p", &lk, &[]).unwrap().is_none());
    }
}
