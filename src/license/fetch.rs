//! A small, bounded HTTP(S) GET for the identity provider's documents (OpenID discovery, JWKS).
//! One request per connection, no redirects (a moved document is a configuration error to fix,
//! not something to follow silently to another host), a deadline over the whole exchange and a
//! cap on the body. TLS is rustls with the Mozilla roots, plus the operator's own CA file for a
//! private identity provider.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

/// Largest document accepted (a JWKS with a few dozen RSA keys is a few tens of KiB).
pub const MAX_BODY: usize = 1024 * 1024;

/// Why a document could not be fetched. Messages name the URL's host, never a query string
/// (which could carry a credential).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Not an `http://` or `https://` URL with a host.
    #[error("not an http(s) URL with a host: {0}")]
    BadUrl(&'static str),
    /// TCP connect or DNS failure.
    #[error("cannot connect to {host}: {error}")]
    Connect {
        /// host:port
        host: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// TLS handshake failure (certificate not trusted, wrong name…).
    #[error("TLS with {host} failed: {error}")]
    Tls {
        /// host:port
        host: String,
        /// The I/O error carrying the TLS alert.
        error: std::io::Error,
    },
    /// HTTP-level failure.
    #[error("HTTP exchange with {host} failed: {error}")]
    Http {
        /// host:port
        host: String,
        /// hyper's error.
        error: hyper::Error,
    },
    /// A status other than 200.
    #[error("{host} answered {status}")]
    Status {
        /// host:port
        host: String,
        /// The status.
        status: http::StatusCode,
    },
    /// Body over [`MAX_BODY`] or unreadable.
    #[error("the document from {host} is larger than {MAX_BODY} bytes or unreadable")]
    Body {
        /// host:port
        host: String,
    },
    /// The deadline passed.
    #[error("no complete answer from {host} within {secs} s")]
    Timeout {
        /// host:port
        host: String,
        /// The deadline.
        secs: u64,
    },
}

/// Trust anchors for HTTPS: the Mozilla roots, plus extra CA certificates (PEM).
#[derive(Clone)]
pub struct Trust(Arc<rustls::ClientConfig>);

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Trust")
    }
}

impl Trust {
    /// The Mozilla roots and the certificates of `extra_pem` (a CA file's contents), if any.
    pub fn new(extra_pem: Option<&[u8]>) -> Result<Trust, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(pem) = extra_pem {
            let mut n = 0usize;
            for cert in CertificateDer::pem_slice_iter(pem) {
                let cert = cert.map_err(|e| format!("not a PEM certificate list: {e}"))?;
                roots.add(cert).map_err(|e| format!("unusable CA certificate: {e}"))?;
                n = n.saturating_add(1);
            }
            if n == 0 {
                return Err("no certificate in the file".to_owned());
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Trust(Arc::new(config)))
    }

    /// The rustls client configuration (for other HTTPS clients of the crate).
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        self.0.clone()
    }
}

/// The parts of a URL a GET needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// Parses an absolute `http://` / `https://` URL.
    pub fn parse(url: &str) -> Result<Target, FetchError> {
        let uri: http::Uri = url.parse().map_err(|_| FetchError::BadUrl("unparsable URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(FetchError::BadUrl("scheme is not http or https")),
        };
        if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(FetchError::BadUrl("credentials in the URL are not supported"));
        }
        let host = uri.host().filter(|h| !h.is_empty()).ok_or(FetchError::BadUrl("no host"))?;
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
        Ok(Target { tls, host: host.trim_start_matches('[').trim_end_matches(']').to_owned(), port, path })
    }

    /// Whether the URL is `https://`.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Host (without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Path and query.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// `host:port`, for messages.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves a reference (e.g. a discovery document's `jwks_uri`) against this URL: absolute
    /// URLs as they are, absolute paths on this host.
    pub fn join(&self, reference: &str) -> Result<Target, FetchError> {
        if reference.starts_with("http://") || reference.starts_with("https://") {
            let t = Target::parse(reference)?;
            // Keys found over TLS must travel over TLS: a plain-HTTP jwks_uri would let anyone
            // on the path insert a signing key.
            if self.tls && !t.tls {
                return Err(FetchError::BadUrl("jwks_uri is http:// but the discovery document came over https"));
            }
            return Ok(t);
        }
        if reference.starts_with('/') && !reference.starts_with("//") {
            return Ok(Target { path: reference.to_owned(), ..self.clone() });
        }
        Err(FetchError::BadUrl("jwks_uri is neither absolute nor an absolute path"))
    }
}

/// GETs `target` within `deadline` and returns the body of a 200 answer.
pub async fn get(target: &Target, trust: &Trust, deadline: Duration) -> Result<Bytes, FetchError> {
    let host = target.authority();
    match tokio::time::timeout(deadline, exchange(target, trust)).await {
        Ok(r) => r,
        Err(_) => Err(FetchError::Timeout { host, secs: deadline.as_secs().max(1) }),
    }
}

async fn exchange(target: &Target, trust: &Trust) -> Result<Bytes, FetchError> {
    let host = target.authority();
    let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|error| FetchError::Connect { host: host.clone(), error })?;
    let _ = tcp.set_nodelay(true);
    if target.tls {
        let name =
            ServerName::try_from(target.host.clone()).map_err(|_| FetchError::BadUrl("host is not a DNS name"))?;
        let tls = tokio_rustls::TlsConnector::from(trust.0.clone())
            .connect(name, tcp)
            .await
            .map_err(|error| FetchError::Tls { host: host.clone(), error })?;
        request(TokioIo::new(tls), target).await
    } else {
        request(TokioIo::new(tcp), target).await
    }
}

async fn request<T>(io: T, target: &Target) -> Result<Bytes, FetchError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let host = target.authority();
    let http = |error| FetchError::Http { host: host.clone(), error };
    let (mut sender, conn) = http1::handshake(io).await.map_err(http)?;
    // The connection future drives the socket; it ends with the exchange.
    let driver = tokio::spawn(conn);
    let default_port = if target.tls { 443 } else { 80 };
    let host_header = match (target.port == default_port, target.host.contains(':')) {
        (true, true) => format!("[{}]", target.host),
        (true, false) => target.host.clone(),
        (false, _) => target.authority(),
    };
    let req = http::Request::get(target.path.as_str())
        .header(http::header::HOST, host_header)
        .header(http::header::ACCEPT, "application/json")
        .header(http::header::USER_AGENT, concat!("drm-origin/", env!("CARGO_PKG_VERSION")))
        .header(http::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| FetchError::BadUrl("path is not a valid request target"))?;
    let resp = sender.send_request(req).await.map_err(http)?;
    let status = resp.status();
    if status != http::StatusCode::OK {
        driver.abort();
        return Err(FetchError::Status { host, status });
    }
    let body = Limited::new(resp.into_body(), MAX_BODY).collect().await;
    driver.abort();
    body.map(|c| c.to_bytes()).map_err(|_| FetchError::Body { host })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("https://idp.example/.well-known/openid-configuration").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "idp.example", 443, "/.well-known/openid-configuration")
        );
        let t = Target::parse("http://127.0.0.1:8081/jwks?x=1").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (false, 8081, "/jwks?x=1"));
        assert_eq!(t.join("/keys").unwrap().path, "/keys");
        assert_eq!(t.join("https://other/k").unwrap().host, "other");
        let secure = Target::parse("https://idp/.well-known/openid-configuration").unwrap();
        assert!(secure.join("http://idp/keys").is_err(), "TLS downgrade for the keys");
        assert!(secure.join("https://idp/keys").is_ok());
        assert!(t.join("keys").is_err());
        assert!(t.join("//evil/keys").is_err());
        assert!(Target::parse("ftp://x/").is_err());
        assert!(Target::parse("https://user:pw@idp/").is_err());
        assert!(Target::parse("/relative").is_err());
        assert_eq!(Target::parse("http://[::1]:9/").unwrap().authority(), "[::1]:9");
    }

    #[test]
    fn trust_rejects_garbage_ca_files() {
        assert!(Trust::new(None).is_ok());
        assert!(Trust::new(Some(b"hello")).is_err());
    }
}
