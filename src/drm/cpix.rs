//! CPIX 2.3 (DASH-IF Content Protection Information Exchange; spec-notes §9): our content keys
//! with their DRM signalling as a document for packagers, key servers and license services
//! ([`export`]), and content keys out of a key server's document ([`import`]). Pure: a string in,
//! a string or keys out; no I/O.
//!
//! **Export** writes, in the order the schema requires:
//! * `ContentKeyList`: one `ContentKey` per key, `kid` as a lower-case UUID (spec-notes §0),
//!   `commonEncryptionScheme` (`cenc`/`cbcs`; not on the HLS AES-128 "envelope" key, which is no
//!   CENC key), the key as `Data/pskc:Secret/pskc:PlainValue` (standard base64).
//! * `DRMSystemList`: for every CENC key × signalled system a `DRMSystem kid systemId` with, as
//!   the system has them, `PSSH` (base64 of the whole box), `ContentProtectionData` (base64 of a
//!   standalone XML fragment for the DASH `ContentProtection` element: default-namespace
//!   `<pssh xmlns="urn:mpeg:cenc:2013">` / `<pro xmlns="urn:microsoft:playready">` plus license
//!   URL elements, as Unified Streaming requires) and `HLSSignalingData` for the media playlist
//!   (`#EXT-X-KEY`) and the multivariant playlist (`#EXT-X-SESSION-KEY`). The boxes come from
//!   [`super::widevine`], [`super::playready`] and [`super::pssh`], the same encoders the init
//!   segments, MPDs and playlists use. FairPlay is signalled for `cbcs` only and only in HLS;
//!   ClearKey under the DASH-IF ClearKey id `e2719d58-…` with the W3C common `pssh`.
//! * `ContentKeyUsageRuleList`: one rule per key, `intendedTrackType` = the class in upper case
//!   and a filter for the class: SD `VideoFilter maxPixels=768·576`, HD `minPixels=768·576+1
//!   maxPixels=1920·1080`, UHD `minPixels=1920·1080+1`, video an unrestricted `VideoFilter`,
//!   audio `AudioFilter`, envelope `LabelFilter label="hls-aes-128"` (a label no track carries,
//!   so CENC packagers never pick that key).
//!
//! **Import** reads our documents and typical key-server output, matching elements by namespace
//! (any prefix): `ContentKey@kid` + `Data/Secret/PlainValue`, and the usage rules to pick each
//! key's class ([`KeyClass`]; a key without a rule is `video`). It is strict: malformed XML, a
//! DOCTYPE, a KID that is not a UUID, a key that is not 16 bytes, duplicate KIDs, encrypted keys
//! (`pskc:EncryptedValue`), key hierarchies, key rotation (`KeyPeriodFilter`), an unknown filter,
//! and a rule or DRM system naming an unknown KID are all a [`CpixError`] naming the element or
//! attribute, never a key value. Documents over [`MAX_DOCUMENT_BYTES`] or with more than
//! [`MAX_KEYS`] keys are refused. [`by_class`] then checks that an asset gets one key per class.
//!
//! The document holds the keys in the clear: whoever stores or sends it must treat it as a secret.

#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic,
        clippy::arithmetic_side_effects
    )
)]

mod export;
mod import;
#[cfg(test)]
mod tests;

use std::fmt;

pub use export::{export, export_schemes, SchemeUse};
pub use import::{by_class, import};

use super::pssh::Scheme;
use super::{playready, System};
use crate::crypto::{Key, KeyId};

/// CPIX namespace.
pub const NS_CPIX: &str = "urn:dashif:org:cpix";
/// PSKC (RFC 6030) namespace: the key container.
pub const NS_PSKC: &str = "urn:ietf:params:xml:ns:keyprov:pskc";
/// XML Encryption namespace (encrypted keys, which we refuse on import).
pub const NS_ENC: &str = "http://www.w3.org/2001/04/xmlenc#";
/// XML Signature namespace.
pub const NS_DS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Largest document [`import`] reads.
pub const MAX_DOCUMENT_BYTES: usize = 4 * 1024 * 1024;
/// Most content keys one document may hold (import and export).
pub const MAX_KEYS: usize = 1024;

/// Upper bound of the SD rule: 768 × 576 pixels.
pub const SD_MAX_PIXELS: u64 = 768 * 576;
/// Upper bound of the HD rule: 1920 × 1080 pixels.
pub const HD_MAX_PIXELS: u64 = 1920 * 1080;
/// `LabelFilter@label` of the HLS AES-128 (envelope) key's rule.
pub const ENVELOPE_LABEL: &str = "hls-aes-128";

/// DASH-IF system ids (spec-notes §0) as CPIX writes them.
const WIDEVINE_ID: &str = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed";
const PLAYREADY_ID: &str = "9a04f079-9840-4286-ab92-e65be0885f95";
const CLEARKEY_ID: &str = "e2719d58-a985-b3c9-781a-b030af78d30e";
const FAIRPLAY_ID: &str = "94ce86fb-07ff-4f43-adb8-93d2fa968ca2";

/// The key class of a CPIX key: which tracks it protects. The names are the key store's
/// (`asset:{id}/{class}`) and the policy's (`keys.video`, `keys.sd`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyClass {
    /// Any video (no resolution-specific key).
    Video,
    /// Video up to 576 lines.
    Sd,
    /// Video up to 1080 lines.
    Hd,
    /// Video above 1080 lines.
    Uhd,
    /// Audio.
    Audio,
    /// HLS AES-128 (whole-segment encryption).
    Envelope,
}

impl KeyClass {
    /// Every class, in policy order.
    pub const ALL: [KeyClass; 6] =
        [KeyClass::Video, KeyClass::Sd, KeyClass::Hd, KeyClass::Uhd, KeyClass::Audio, KeyClass::Envelope];

    /// The store and config name (`video`, `sd`, `hd`, `uhd`, `audio`, `envelope`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeyClass::Video => "video",
            KeyClass::Sd => "sd",
            KeyClass::Hd => "hd",
            KeyClass::Uhd => "uhd",
            KeyClass::Audio => "audio",
            KeyClass::Envelope => "envelope",
        }
    }

    /// Parses a store or config name.
    pub fn parse(s: &str) -> Option<KeyClass> {
        KeyClass::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// `ContentKeyUsageRule@intendedTrackType` as export writes it.
    pub fn track_type(self) -> &'static str {
        match self {
            KeyClass::Video => "VIDEO",
            KeyClass::Sd => "SD",
            KeyClass::Hd => "HD",
            KeyClass::Uhd => "UHD",
            KeyClass::Audio => "AUDIO",
            KeyClass::Envelope => "ENVELOPE",
        }
    }
}

impl fmt::Display for KeyClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One content key of a CPIX document. `Debug` shows the KID and class, never the key.
#[derive(Clone, PartialEq, Eq)]
pub struct CpixKey {
    /// Key id.
    pub kid: KeyId,
    /// The content key.
    pub key: Key,
    /// Which tracks it protects.
    pub class: KeyClass,
    /// `commonEncryptionScheme`: import reports what the document says; export writes this, or
    /// its `scheme` argument when `None`. Ignored for [`KeyClass::Envelope`].
    pub scheme: Option<Scheme>,
    /// `explicitIV` (16 bytes), for DRM systems that deliver the IV with the key.
    pub explicit_iv: Option<[u8; 16]>,
}

impl CpixKey {
    /// A key of `class` with no scheme or IV of its own.
    pub fn new(kid: KeyId, key: Key, class: KeyClass) -> CpixKey {
        CpixKey { kid, key, class, scheme: None, explicit_iv: None }
    }
}

impl fmt::Debug for CpixKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpixKey")
            .field("kid", &self.kid)
            .field("class", &self.class)
            .field("scheme", &self.scheme)
            .field("explicit_iv", &self.explicit_iv.is_some())
            .finish_non_exhaustive()
    }
}

/// Why a CPIX document could not be read or written. Names the element or attribute and the
/// reason; never carries a key value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CpixError {
    /// The document is larger than [`MAX_DOCUMENT_BYTES`].
    #[error("CPIX document of {0} bytes is over the limit of {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge(usize),
    /// More than [`MAX_KEYS`] content keys.
    #[error("CPIX document holds more than {MAX_KEYS} content keys")]
    TooManyKeys,
    /// Not well-formed XML (or a construct we refuse, such as a DOCTYPE).
    #[error("malformed CPIX XML at byte {offset}: {reason}")]
    Xml {
        /// Byte offset in the document.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An element or attribute with a wrong or missing value.
    #[error("{at}: {reason}")]
    Invalid {
        /// The element or attribute (`ContentKey@kid`, `ContentKey 8ba9…/Data/Secret/PlainValue`).
        at: String,
        /// What is wrong.
        reason: String,
    },
    /// A key given as `pskc:EncryptedValue` (DeliveryData / document key encryption).
    #[error("encrypted CPIX keys are not supported ({at} is a pskc:EncryptedValue)")]
    Encrypted {
        /// The element.
        at: String,
    },
    /// A CPIX feature we do not implement.
    #[error("{at}: {what} is not supported")]
    Unsupported {
        /// The element or attribute.
        at: String,
        /// The feature.
        what: &'static str,
    },
    /// The PlayReady header for a key could not be built (export).
    #[error("PlayReady signalling for key {kid}: {source}")]
    PlayReady {
        /// The key.
        kid: KeyId,
        /// Why.
        source: playready::Error,
    },
}

fn invalid(at: impl Into<String>, reason: impl Into<String>) -> CpixError {
    CpixError::Invalid { at: at.into(), reason: reason.into() }
}

/// The CPIX `systemId` of a DRM system.
pub fn system_id(system: System) -> &'static str {
    match system {
        System::ClearKey => CLEARKEY_ID,
        System::Widevine => WIDEVINE_ID,
        System::PlayReady => PLAYREADY_ID,
        System::FairPlay => FAIRPLAY_ID,
    }
}
