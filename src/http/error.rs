//! The one place that decides a failed request's status: whose fault it was (the client's: 4xx;
//! the asset's or ours: 5xx) and the short, sanitised body the client sees. Details (which may
//! name files or codecs, never keys) are logged once, server-side.

use http::StatusCode;

use super::routes::RouteError;
use crate::license::device::DeviceError;
use crate::license::Denied;
use crate::packaging::fmp4::SegmentError;
use crate::packaging::protect::ProtectError;

/// Every way a request can fail.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Malformed or unknown path.
    #[error(transparent)]
    Route(#[from] RouteError),
    /// No asset with that id.
    #[error("unknown asset")]
    UnknownAsset,
    /// The asset exists but its files are unusable (reason logged at scan time).
    #[error("asset unavailable: {0}")]
    AssetBroken(String),
    /// No rendition with that id in the asset.
    #[error("unknown rendition")]
    UnknownRendition,
    /// Segment number out of range.
    #[error("unknown segment")]
    UnknownSegment,
    /// A segment name whose version is not the current one: bytes made under keys, policies or
    /// files no longer in force (never answered with other bytes).
    #[error("segment name of another version")]
    StaleVersion,
    /// The asset's policy does not offer this protection variant.
    #[error("variant not offered by the asset's policy")]
    VariantNotOffered,
    /// The asset is protected and its policy refuses clear playout.
    #[error("clear playout refused by the asset's policy")]
    ClearRefused,
    /// The source file changed under us (truncated or rewritten in place).
    #[error("source file changed since it was indexed")]
    FileChanged,
    /// The segment could not be built.
    #[error("segment unavailable: {0}")]
    Segment(#[from] SegmentError),
    /// A protected output could not be produced (unsupported codec, unparsable bitstream, I/O).
    #[error("protected output unavailable: {0}")]
    Protect(String),
    /// Unknown key, or key delivery not allowed for it (indistinguishable on purpose).
    #[error("no deliverable key")]
    NoKey,
    /// Not GET, HEAD or OPTIONS.
    #[error("method not allowed")]
    Method,
    /// The first scan of the asset folder is still running.
    #[error("starting: the asset folder is being indexed")]
    Starting,
    /// The demo player's library is not installed (warned once, then debug lines).
    #[error("demo player unavailable: {0}")]
    Player(String),
}

impl From<ProtectError> for ServeError {
    fn from(e: ProtectError) -> Self {
        ServeError::Protect(e.to_string())
    }
}

impl ServeError {
    /// Status and public body.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ServeError::Route(RouteError::BadPath(_)) => (StatusCode::BAD_REQUEST, "bad request\n"),
            ServeError::Route(RouteError::NotFound) => (StatusCode::NOT_FOUND, "not found\n"),
            ServeError::UnknownAsset => (StatusCode::NOT_FOUND, "unknown asset\n"),
            ServeError::UnknownRendition => (StatusCode::NOT_FOUND, "unknown rendition\n"),
            ServeError::UnknownSegment => (StatusCode::NOT_FOUND, "unknown segment\n"),
            ServeError::StaleVersion => (StatusCode::NOT_FOUND, "no segment of this version (reload the manifest)\n"),
            ServeError::VariantNotOffered => (StatusCode::NOT_FOUND, "variant not offered\n"),
            ServeError::ClearRefused => (StatusCode::FORBIDDEN, "clear playout not allowed for this asset\n"),
            ServeError::NoKey => (StatusCode::NOT_FOUND, "not found\n"),
            // The asset is known but cannot be served right now: retryable once fixed.
            ServeError::AssetBroken(_) => (StatusCode::SERVICE_UNAVAILABLE, "asset unavailable\n"),
            ServeError::FileChanged => (StatusCode::SERVICE_UNAVAILABLE, "asset is being updated\n"),
            ServeError::Segment(_) => (StatusCode::SERVICE_UNAVAILABLE, "segment unavailable\n"),
            ServeError::Protect(_) => (StatusCode::SERVICE_UNAVAILABLE, "protected output unavailable\n"),
            ServeError::Starting => (StatusCode::SERVICE_UNAVAILABLE, "starting\n"),
            ServeError::Method => (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
            ServeError::Player(_) => (StatusCode::NOT_FOUND, "demo player not available on this origin\n"),
        }
    }

    /// Whether the failure is worth a warning (the operator must act) rather than a debug line.
    pub fn is_operator_problem(&self) -> bool {
        matches!(self, ServeError::Protect(_) | ServeError::Segment(_))
    }
}

/// The status of a device-licensing refusal (design §5): the request's fault (400/413), no or a
/// bad credential (401), a valid one that may not do this (403), nothing by that id for this
/// caller (404), a conflict with the registry's state (409), or the registry out of reach (503).
pub fn device_status(e: &DeviceError) -> StatusCode {
    match e {
        DeviceError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        DeviceError::Malformed(_) | DeviceError::MalformedKey(_) | DeviceError::StaleRequest => StatusCode::BAD_REQUEST,
        DeviceError::Token(Denied::Unauthorized(_)) | DeviceError::BadSignature => StatusCode::UNAUTHORIZED,
        DeviceError::Token(Denied::Forbidden(_))
        | DeviceError::Revoked
        | DeviceError::LimitReached
        | DeviceError::WrongDomain => StatusCode::FORBIDDEN,
        DeviceError::UnknownDevice
        | DeviceError::UnknownDomain
        | DeviceError::UnknownAsset
        | DeviceError::NotEnabled => StatusCode::NOT_FOUND,
        DeviceError::IdTaken
        | DeviceError::KeyTaken
        | DeviceError::Replayed
        | DeviceError::StaleGeneration
        | DeviceError::DomainFull => StatusCode::CONFLICT,
        DeviceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        DeviceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_device_refusal_has_its_status() {
        let cases = [
            (DeviceError::TooLarge, 413, "request_too_large"),
            (DeviceError::Malformed("x"), 400, "malformed_request"),
            (DeviceError::MalformedKey("enc"), 400, "malformed_key"),
            (DeviceError::StaleRequest, 400, "stale_request"),
            (DeviceError::Token(Denied::Unauthorized("expired")), 401, "expired"),
            (DeviceError::BadSignature, 401, "bad_device_signature"),
            (DeviceError::Token(Denied::Forbidden("missing_required_claim")), 403, "missing_required_claim"),
            (DeviceError::Revoked, 403, "device_revoked"),
            (DeviceError::LimitReached, 403, "device_limit_reached"),
            (DeviceError::WrongDomain, 403, "wrong_domain"),
            (DeviceError::UnknownDevice, 404, "unknown_device"),
            (DeviceError::UnknownDomain, 404, "unknown_domain"),
            (DeviceError::IdTaken, 409, "device_id_taken"),
            (DeviceError::Replayed, 409, "replayed_request"),
            (DeviceError::StaleGeneration, 409, "stale_generation"),
            (DeviceError::DomainFull, 409, "domain_full"),
            (DeviceError::Unavailable("down".into()), 503, "registry_unavailable"),
        ];
        for (e, status, reason) in cases {
            assert_eq!((device_status(&e).as_u16(), e.reason()), (status, reason), "{e:?}");
        }
    }
}
