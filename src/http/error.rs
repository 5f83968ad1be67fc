//! The one place that decides a failed request's status: whose fault it was (the client's: 4xx;
//! the asset's or ours: 5xx) and the short, sanitised body the client sees. Details are logged once.

use http::StatusCode;

use super::routes::RouteError;
use crate::packaging::fmp4::SegmentError;

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
    /// The segment could not be built (file changed under us).
    #[error("segment unavailable: {0}")]
    Segment(#[from] SegmentError),
    /// Not GET, HEAD or OPTIONS.
    #[error("method not allowed")]
    Method,
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
            // The asset is known but cannot be served right now: retryable once fixed.
            ServeError::AssetBroken(_) => (StatusCode::SERVICE_UNAVAILABLE, "asset unavailable\n"),
            ServeError::Segment(_) => (StatusCode::SERVICE_UNAVAILABLE, "segment unavailable\n"),
            ServeError::Method => (StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
        }
    }
}
