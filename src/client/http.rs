//! The reference client's HTTP: one request per connection (GET or POST), a deadline, a body
//! cap, HTTPS through rustls with the Mozilla roots. Redirects are not followed.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use super::ClientError;
use crate::license::fetch::{Target, Trust};

/// Largest body read (a long playlist or a big segment).
pub const MAX_BODY: usize = 64 * 1024 * 1024;

/// An answer.
#[derive(Debug)]
pub struct Answer {
    /// Status.
    pub status: http::StatusCode,
    /// Body.
    pub body: Bytes,
}

/// The client's connection settings.
#[derive(Clone, Debug)]
pub struct Http {
    trust: Trust,
    deadline: Duration,
}

impl Http {
    /// Mozilla roots, 30 s per exchange.
    pub fn new() -> Result<Http, ClientError> {
        Ok(Http { trust: Trust::new(None).map_err(ClientError::Http)?, deadline: Duration::from_secs(30) })
    }

    /// GET `url`.
    pub async fn get(&self, url: &str) -> Result<Answer, ClientError> {
        self.send(http::Method::GET, url, None, None).await
    }

    /// GET `url`, which must answer 200.
    pub async fn get_ok(&self, url: &str) -> Result<Bytes, ClientError> {
        let a = self.get(url).await?;
        if a.status != http::StatusCode::OK {
            return Err(ClientError::Status {
                url: strip_query(url),
                status: a.status.as_u16(),
                reason: reason_of(&a.body),
            });
        }
        Ok(a.body)
    }

    /// POST JSON `body` to `url`, with a bearer token if given.
    pub async fn post_json(
        &self,
        url: &str,
        body: &serde_json::Value,
        token: Option<&str>,
    ) -> Result<Answer, ClientError> {
        self.send(http::Method::POST, url, Some(body.to_string().into_bytes()), token).await
    }

    async fn send(
        &self,
        method: http::Method,
        url: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let t = Target::parse(url).map_err(|e| ClientError::Http(e.to_string()))?;
        match tokio::time::timeout(self.deadline, self.exchange(&t, method, body, token)).await {
            Ok(r) => r,
            Err(_) => {
                Err(ClientError::Http(format!("no answer from {} within {} s", t.authority(), self.deadline.as_secs())))
            }
        }
    }

    async fn exchange(
        &self,
        t: &Target,
        method: http::Method,
        body: Option<Vec<u8>>,
        token: Option<&str>,
    ) -> Result<Answer, ClientError> {
        let host = t.authority();
        let tcp = tokio::net::TcpStream::connect((t.host(), t.port()))
            .await
            .map_err(|e| ClientError::Http(format!("cannot connect to {host}: {e}")))?;
        let _ = tcp.set_nodelay(true);
        if t.is_tls() {
            let name = ServerName::try_from(t.host().to_owned())
                .map_err(|_| ClientError::Http("host is not a DNS name".into()))?;
            let tls = tokio_rustls::TlsConnector::from(self.trust.client_config())
                .connect(name, tcp)
                .await
                .map_err(|e| ClientError::Http(format!("TLS with {host}: {e}")))?;
            request(TokioIo::new(tls), t, method, body, token).await
        } else {
            request(TokioIo::new(tcp), t, method, body, token).await
        }
    }
}

async fn request<T>(
    io: T,
    t: &Target,
    method: http::Method,
    body: Option<Vec<u8>>,
    token: Option<&str>,
) -> Result<Answer, ClientError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let host = t.authority();
    let err = |e: hyper::Error| ClientError::Http(format!("HTTP with {host}: {e}"));
    let (mut sender, conn) = http1::handshake(io).await.map_err(err)?;
    let driver = tokio::spawn(conn);
    let mut b = http::Request::builder()
        .method(method)
        .uri(t.path())
        .header(http::header::HOST, t.authority())
        .header(http::header::USER_AGENT, concat!("drm-origin-client/", env!("CARGO_PKG_VERSION")))
        .header(http::header::CONNECTION, "close");
    if body.is_some() {
        b = b.header(http::header::CONTENT_TYPE, "application/json");
    }
    if let Some(tok) = token {
        b = b.header(http::header::AUTHORIZATION, format!("Bearer {tok}"));
    }
    let req = b
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|_| ClientError::Http("invalid request target".into()))?;
    let resp = sender.send_request(req).await.map_err(err)?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), MAX_BODY).collect().await;
    driver.abort();
    let body =
        body.map(|c| c.to_bytes()).map_err(|_| ClientError::Http(format!("body from {host} too large or cut")))?;
    Ok(Answer { status, body })
}

/// The `reason` of a JSON refusal, if it is one.
pub fn reason_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// A URL for messages (its query could hold a token).
pub fn strip_query(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_owned()
}

/// Resolves `reference` against `base` (RFC 3986 §5.2, the cases manifests use: absolute URLs,
/// absolute paths, relative paths with `..`), keeping `base`'s query out.
pub fn join(base: &str, reference: &str) -> String {
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return reference.to_owned();
    }
    let base = base.split(['?', '#']).next().unwrap_or(base);
    let (scheme, rest) = base.split_once("://").unwrap_or(("http", base));
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest.get(..i).unwrap_or(""), rest.get(i..).unwrap_or("/")),
        None => (rest, "/"),
    };
    if let Some(abs) = reference.strip_prefix("//") {
        return format!("{scheme}://{abs}");
    }
    let (ref_path, ref_query) = match reference.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (reference, None),
    };
    let merged = if ref_path.starts_with('/') {
        ref_path.to_owned()
    } else {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{ref_path}")
    };
    let mut out: Vec<&str> = Vec::new();
    for seg in merged.split('/').skip(1) {
        match seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut url = format!("{scheme}://{authority}/{}", out.join("/"));
    if let Some(q) = ref_query {
        url.push('?');
        url.push_str(q);
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_like_a_player() {
        let m = "http://h:1/a/b/manifest.mpd?token=x";
        assert_eq!(join(m, "v_1/init.mp4"), "http://h:1/a/b/v_1/init.mp4");
        assert_eq!(join(m, "../c/1.m4s"), "http://h:1/a/c/1.m4s");
        assert_eq!(join(m, "/x/y.m3u8?k=1"), "http://h:1/x/y.m3u8?k=1");
        assert_eq!(join(m, "https://cdn/z"), "https://cdn/z");
        assert_eq!(join("http://h/", "v1/d/x/index.json"), "http://h/v1/d/x/index.json");
        assert_eq!(join("http://h", "v1/keys.json"), "http://h/v1/keys.json");
    }
}
