//! The reference device client: what a player with device-bound licensing does, as a library
//! (and the `drm-origin client` command).
//!
//! * [`store`]: the device's local state (id, generation, certificate, pinned origin keys,
//!   domain keys, licenses, rollback counters); private keys in PKCS#8 files of mode 0600.
//! * [`verify`]: every object is checked before use: signature by a pinned origin key (new keys
//!   followed only through announcements signed by a pinned one), `typ`, binding to this device
//!   (id, generation, key) or to a domain it holds the key of, validity with clock skew (now =
//!   max(clock, last trusted time)), and `seq` rollback.
//! * [`media`]: a DASH or HLS rendition (cenc, cbcs, AES-128) → clear fMP4.
//! * [`ops`]: register, fetch-license, import, export, reset, domain join/leave, decrypt.
//!
//! No license server is contacted to play: licenses come from the static folder (or an import).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic))]

pub mod http;
pub mod media;
pub mod ops;
pub mod store;
pub mod verify;

/// Why the client refuses or fails. Refusals of an object have a stable reason word.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// An object was refused: `reason` says why (`stale_generation`, `wrong_domain`, …).
    #[error("refused: {reason} ({detail})")]
    Refused {
        /// Stable word.
        reason: &'static str,
        /// What was refused.
        detail: String,
    },
    /// The origin answered with a refusal.
    #[error("{url} answered {status} {reason}")]
    Status {
        /// URL (no query).
        url: String,
        /// HTTP status.
        status: u16,
        /// The JSON refusal's reason, if any.
        reason: String,
    },
    /// Network trouble.
    #[error("{0}")]
    Http(String),
    /// Local store trouble.
    #[error("device store: {0}")]
    Store(String),
    /// The media could not be understood or decrypted.
    #[error("media: {0}")]
    Media(String),
}

impl ClientError {
    /// A refusal.
    pub fn refused(reason: &'static str, detail: impl Into<String>) -> ClientError {
        ClientError::Refused { reason, detail: detail.into() }
    }

    /// The reason word of a refusal (or of the origin's refusal).
    pub fn reason(&self) -> Option<&str> {
        match self {
            ClientError::Refused { reason, .. } => Some(reason),
            ClientError::Status { reason, .. } if !reason.is_empty() => Some(reason),
            _ => None,
        }
    }
}
