//! An S3-compatible bucket as the asset store: listing (for the catalogue's polling) and ranged
//! GETs (for indexing and sample data), through the `object_store` crate's S3 client.
//!
//! Why our own HTTP connector: `object_store`'s `aws` feature brings reqwest with aws-lc-rs (a C
//! build of several minutes); `aws-base` + `ring` keeps its S3 signing and XML handling and lets
//! us hand it a small [`HttpService`] over the hyper client (rustls with ring, which the server's
//! TLS already builds).
//!
//! All storage I/O runs on a small runtime of its own ("s3-io" threads): callers on blocking
//! threads (indexing, encryption) and on the server's workers (clear segment bodies) wait for it
//! with a deadline, so a slow or dead bucket costs a request its deadline and nothing more.

use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody,
    HttpService,
};
use object_store::path::Path as ObjectPath;
use object_store::{BackoffConfig, GetOptions, GetRange, ObjectStore, RetryConfig};

/// Single-flight stripes of the chunk cache.
const STRIPES: usize = 256;

/// Access key pair; `Debug` shows the key id only.
#[derive(Clone)]
pub struct Credentials {
    /// `AWS_ACCESS_KEY_ID`
    pub key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`
    pub secret: String,
    /// `AWS_SESSION_TOKEN` (temporary credentials).
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials").field("key_id", &self.key_id).finish_non_exhaustive()
    }
}

/// Validated `[storage] backend = "s3"` settings.
#[derive(Clone, Debug)]
pub struct S3Settings {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix of the asset tree ("" or ending in `/`).
    pub prefix: String,
    /// Endpoint URL of an S3-compatible server (`None`: AWS for `region`).
    pub endpoint: Option<String>,
    /// Region (signing scope).
    pub region: String,
    /// Credentials (`None`: unsigned requests, for a public bucket; no instance-metadata lookup).
    pub credentials: Option<Credentials>,
    /// Byte budget of the chunk cache (sample data read ahead and kept).
    pub cache_bytes: u64,
    /// Chunk size: the unit of sample-data GETs and of the cache.
    pub chunk_bytes: u64,
    /// Deadline of one storage read; a miss that cannot be served within it fails (503).
    pub timeout: Duration,
}

/// One object of a listing, its key relative to the prefix.
#[derive(Clone, Debug)]
pub struct Listed {
    /// Key below the prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag (quoted as the server sent it); empty if the server sent none.
    pub etag: String,
    /// Last-Modified, nanoseconds since the epoch.
    pub modified_ns: i128,
}

/// Storage traffic counters (exposed on `/metrics`).
#[derive(Debug, Default)]
pub struct Traffic {
    /// GET requests made.
    pub gets: AtomicU64,
    /// Bytes received by GETs for sample data.
    pub data_bytes: AtomicU64,
    /// Bytes received by GETs made while indexing.
    pub index_bytes: AtomicU64,
    /// Reads that failed (timeout, unreachable, object changed).
    pub errors: AtomicU64,
    /// Chunk-cache hits and misses.
    pub chunk_hits: AtomicU64,
    /// Chunk-cache misses.
    pub chunk_misses: AtomicU64,
}

/// A bucket (and prefix) the catalogue is read from.
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    io: tokio::runtime::Handle,
    prefix: String,
    name: String,
    timeout: Duration,
    chunk: u64,
    chunks: moka::sync::Cache<(u64, u64), Bytes>,
    /// Single flight for chunk runs: concurrent misses of one run wait for one GET. Each stripe
    /// remembers its last failure, so waiters behind a failed GET fail at once instead of
    /// queueing one deadline each.
    inflight: Vec<std::sync::Mutex<Option<Instant>>>,
    /// Traffic counters.
    pub traffic: Traffic,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client: its configuration holds the credentials.
        f.debug_struct("Bucket").field("name", &self.name).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Which of a read's bytes are accounted as what.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Box headers and `moov`/`moof` bodies read while indexing.
    Index,
    /// Sample data for a response.
    Data,
}

impl Bucket {
    /// A client for `s`; no request is made yet.
    pub fn open(s: &S3Settings) -> Result<Bucket, String> {
        let io = io_runtime()?;
        let mut b = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(&s.bucket)
            .with_region(&s.region)
            .with_http_connector(Connector { timeout: s.timeout })
            .with_retry(RetryConfig {
                // Fail fast: one quick retry for a dropped connection, inside the read deadline.
                backoff: BackoffConfig {
                    init_backoff: Duration::from_millis(20),
                    max_backoff: Duration::from_millis(100),
                    base: 2.0,
                },
                max_retries: 1,
                retry_timeout: s.timeout,
            })
            .with_client_options(ClientOptions::new().with_allow_http(true));
        if let Some(ep) = &s.endpoint {
            b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
        }
        if let Some(c) = &s.credentials {
            b = b.with_access_key_id(&c.key_id).with_secret_access_key(&c.secret);
            if let Some(t) = &c.token {
                b = b.with_token(t);
            }
        } else {
            b = b.with_skip_signature(true);
        }
        let store = b.build().map_err(|e| format!("S3 client for bucket {}: {e}", s.bucket))?;
        let chunks = moka::sync::Cache::builder()
            .weigher(|_k: &(u64, u64), v: &Bytes| u32::try_from(v.len()).unwrap_or(u32::MAX))
            .max_capacity(s.cache_bytes)
            .build();
        Ok(Bucket {
            store: Arc::new(store),
            io,
            prefix: s.prefix.clone(),
            name: s.bucket.clone(),
            timeout: s.timeout,
            chunk: s.chunk_bytes.max(4096),
            chunks,
            traffic: Traffic::default(),
            inflight: (0..STRIPES).map(|_| std::sync::Mutex::new(None)).collect(),
        })
    }

    /// `bucket/prefix`, for log lines.
    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.name, self.prefix)
    }

    /// Chunk size of sample-data reads.
    pub fn chunk_bytes(&self) -> u64 {
        self.chunk
    }

    /// Every object below the prefix. A failure (bucket unreachable, denied) is an error: the
    /// caller keeps the catalogue it has.
    pub fn list(&self) -> Result<Vec<Listed>, String> {
        let store = self.store.clone();
        let prefix = self.prefix.clone();
        let listing = async move {
            let at = (!prefix.is_empty()).then(|| ObjectPath::from(prefix.trim_end_matches('/')));
            let mut stream = store.list(at.as_ref());
            let mut out = Vec::new();
            while let Some(item) = stream.next().await {
                let meta = item.map_err(|e| e.to_string())?;
                let full = meta.location.to_string();
                let Some(key) = full.strip_prefix(prefix.as_str()) else { continue };
                let modified_ns = i128::from(meta.last_modified.timestamp())
                    .saturating_mul(1_000_000_000)
                    .saturating_add(i128::from(meta.last_modified.timestamp_subsec_nanos()));
                out.push(Listed {
                    key: key.to_owned(),
                    size: meta.size,
                    etag: meta.e_tag.unwrap_or_default(),
                    modified_ns,
                });
            }
            Ok(out)
        };
        // A listing pages through the bucket: allow it several read deadlines.
        self.run(listing, self.timeout.saturating_mul(10)).map_err(|e| format!("listing {}: {e}", self.describe()))
    }

    /// `range` of object `key` (below the prefix) as it was when listed with `etag`: a changed or
    /// deleted object is an error, never bytes of another version.
    pub fn fetch(&self, key: &str, etag: &str, range: Range<u64>, purpose: Purpose) -> io::Result<Bytes> {
        let store = self.store.clone();
        let path = ObjectPath::from(format!("{}{key}", self.prefix));
        let want = range.end.saturating_sub(range.start);
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: (!etag.is_empty()).then(|| etag.to_owned()),
            ..GetOptions::default()
        };
        self.traffic.gets.fetch_add(1, Ordering::Relaxed);
        let get = async move {
            let r = store.get_opts(&path, opts).await.map_err(|e| e.to_string())?;
            r.bytes().await.map_err(|e| e.to_string())
        };
        let got = self.run(get, self.timeout).and_then(|b| {
            if u64::try_from(b.len()).ok() == Some(want) {
                Ok(b)
            } else {
                Err(format!("asked for {want} bytes, got {}", b.len()))
            }
        });
        match got {
            Ok(b) => {
                let counter =
                    if purpose == Purpose::Index { &self.traffic.index_bytes } else { &self.traffic.data_bytes };
                counter.fetch_add(want, Ordering::Relaxed);
                Ok(b)
            }
            Err(e) => {
                self.traffic.errors.fetch_add(1, Ordering::Relaxed);
                Err(io::Error::other(format!("object storage read of {key}: {e}")))
            }
        }
    }

    /// `len` bytes at `offset` of an object identified by `id` (its fingerprint: key, size and
    /// ETag), through the chunk cache: missing chunks are fetched with one GET per run of
    /// adjacent missing chunks, so a segment costs about its own bytes, rounded to chunks.
    pub fn read_cached(&self, id: u64, key: &str, etag: &str, size: u64, offset: u64, len: u64) -> io::Result<Bytes> {
        let end = offset.checked_add(len).filter(|e| *e <= size).ok_or(io::ErrorKind::UnexpectedEof)?;
        if len == 0 {
            return Ok(Bytes::new());
        }
        let first = offset / self.chunk;
        let last = end.saturating_sub(1) / self.chunk;
        let mut have: Vec<(u64, Option<Bytes>)> = (first..=last).map(|c| (c, self.chunks.get(&(id, c)))).collect();
        let mut i = 0usize;
        while i < have.len() {
            if have.get(i).is_some_and(|(_, b)| b.is_some()) {
                self.traffic.chunk_hits.fetch_add(1, Ordering::Relaxed);
                i = i.saturating_add(1);
                continue;
            }
            let mut j = i;
            while have.get(j.saturating_add(1)).is_some_and(|(_, b)| b.is_none()) {
                j = j.saturating_add(1);
            }
            let (Some((c0, _)), Some((c1, _))) = (have.get(i), have.get(j)) else { break };
            let (c0, c1) = (*c0, *c1);
            let pieces = on_blocking_thread(|| self.fill(id, key, etag, size, c0, c1))?;
            for (c, piece) in (c0..=c1).zip(pieces) {
                if let Some(slot) = have.get_mut(usize::try_from(c.saturating_sub(first)).unwrap_or(usize::MAX)) {
                    slot.1 = Some(piece);
                }
            }
            i = j.saturating_add(1);
        }
        // Cut the asked range out of the chunks: one chunk is a zero-copy slice.
        let parts: Vec<Bytes> = have.into_iter().filter_map(|(_, b)| b).collect();
        let skip = usize::try_from(offset.saturating_sub(first.saturating_mul(self.chunk))).unwrap_or(usize::MAX);
        let want = usize::try_from(len).map_err(|_| io::ErrorKind::OutOfMemory)?;
        if let [one] = parts.as_slice() {
            let stop = skip.saturating_add(want);
            return one
                .get(skip..stop)
                .map(|_| one.slice(skip..stop))
                .ok_or_else(|| io::ErrorKind::UnexpectedEof.into());
        }
        let mut out = Vec::with_capacity(want);
        let mut to_skip = skip;
        for p in parts {
            let from = to_skip.min(p.len());
            to_skip = to_skip.saturating_sub(p.len());
            let rest = want.saturating_sub(out.len());
            let stop = from.saturating_add(rest).min(p.len());
            out.extend_from_slice(p.get(from..stop).unwrap_or_default());
            if out.len() >= want {
                break;
            }
        }
        if out.len() != want {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Bytes::from(out))
    }

    /// Chunks `c0..=c1` of an object, fetched with one GET unless a concurrent request for the
    /// same run fetched them while this one waited its turn.
    fn fill(&self, id: u64, key: &str, etag: &str, size: u64, c0: u64, c1: u64) -> io::Result<Vec<Bytes>> {
        let waiting_since = Instant::now();
        let h = super::fnv1a(&[&id.to_be_bytes(), &c0.to_be_bytes(), &c1.to_be_bytes()]);
        let stripe = usize::try_from(h % STRIPES as u64).ok().and_then(|i| self.inflight.get(i));
        let mut guard = stripe.map(|m| m.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(failed) = guard.as_deref().copied().flatten() {
            if failed >= waiting_since {
                self.traffic.errors.fetch_add(1, Ordering::Relaxed);
                return Err(io::Error::other(format!("object storage read of {key}: the same read just failed")));
            }
        }
        let cached: Vec<Bytes> = (c0..=c1).filter_map(|c| self.chunks.get(&(id, c))).collect();
        if u64::try_from(cached.len()).ok() == Some(c1.saturating_sub(c0).saturating_add(1)) {
            self.traffic.chunk_hits.fetch_add(u64::try_from(cached.len()).unwrap_or(0), Ordering::Relaxed);
            return Ok(cached);
        }
        let start = c0.saturating_mul(self.chunk);
        let stop = c1.saturating_add(1).saturating_mul(self.chunk).min(size);
        let run = match self.fetch(key, etag, start..stop, Purpose::Data) {
            Ok(run) => run,
            Err(e) => {
                if let Some(g) = guard.as_deref_mut() {
                    *g = Some(Instant::now());
                }
                return Err(e);
            }
        };
        if let Some(g) = guard.as_deref_mut() {
            *g = None;
        }
        let mut out = Vec::new();
        for c in c0..=c1 {
            let a = usize::try_from(c.saturating_sub(c0).saturating_mul(self.chunk)).unwrap_or(usize::MAX);
            let b = a.saturating_add(usize::try_from(self.chunk).unwrap_or(usize::MAX)).min(run.len());
            let piece = run.get(a..b).map(|_| run.slice(a..b)).ok_or(io::ErrorKind::UnexpectedEof)?;
            self.traffic.chunk_misses.fetch_add(1, Ordering::Relaxed);
            self.chunks.insert((id, c), piece.clone());
            out.push(piece);
        }
        Ok(out)
    }

    /// Runs `fut` on the storage runtime and waits at most `deadline` for it. Blocking: on a
    /// worker of a multi-threaded runtime the wait is announced with `block_in_place`.
    fn run<T, F>(&self, fut: F, deadline: Duration) -> Result<T, String>
    where
        T: Send + 'static,
        F: std::future::Future<Output = Result<T, String>> + Send + 'static,
    {
        let (reply, answer) = std::sync::mpsc::sync_channel::<Result<T, String>>(1);
        self.io.spawn(async move {
            let r = match tokio::time::timeout(deadline, fut).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
            };
            let _ = reply.send(r);
        });
        let wait = move || answer.recv_timeout(deadline.saturating_add(Duration::from_millis(200)));
        let got = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(wait)
            }
            _ => wait(),
        };
        got.unwrap_or_else(|_| Err(format!("no answer within {} ms", deadline.as_millis())))
    }
}

/// Runs `f`, which may block (a lock, a storage read), announcing it with `block_in_place` on a
/// worker of a multi-threaded runtime so the worker's other tasks move elsewhere.
fn on_blocking_thread<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// The storage runtime: two threads that live as long as the process (a runtime dropped from
/// inside another one would panic, so it is never dropped).
fn io_runtime() -> Result<tokio::runtime::Handle, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("s3-io".into())
        .spawn(move || {
            match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("s3-io")
                .enable_all()
                .build()
            {
                Ok(rt) => {
                    let _ = tx.send(Ok(rt.handle().clone()));
                    rt.block_on(std::future::pending::<()>());
                }
                Err(e) => {
                    let _ = tx.send(Err(format!("storage runtime: {e}")));
                }
            }
        })
        .map_err(|e| format!("storage thread: {e}"))?;
    rx.recv().map_err(|_| "storage runtime did not start".to_owned())?
}

/// `object_store`'s HTTP, over a pooled hyper client (http and https, rustls + ring).
#[derive(Debug)]
struct Connector {
    timeout: Duration,
}

impl HttpConnector for Connector {
    fn connect(&self, _options: &ClientOptions) -> object_store::Result<HttpClient> {
        let https =
            hyper_rustls::HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().build();
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        Ok(HttpClient::new(Http { client, timeout: self.timeout }))
    }
}

type HyperClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    object_store::client::HttpRequestBody,
>;

struct Http {
    client: HyperClient,
    timeout: Duration,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Http").finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl HttpService for Http {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        // The whole exchange, body included, within the deadline; bodies are bounded ranges and
        // listing pages, so they are collected here.
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                let kind = if e.is_connect() { HttpErrorKind::Connect } else { HttpErrorKind::Request };
                HttpError::new(kind, e)
            })?;
            let (parts, body) = resp.into_parts();
            let bytes = body.collect().await.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e))?.to_bytes();
            Ok(HttpResponse::from_parts(parts, HttpResponseBody::from(bytes)))
        };
        match tokio::time::timeout(self.timeout, exchange).await {
            Ok(r) => r,
            Err(e) => Err(HttpError::new(HttpErrorKind::Timeout, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let c =
            Credentials { key_id: "AKIDEXAMPLE".into(), secret: "wJalrXUtnFEMIK7MDENGbPxRfiCY".into(), token: None };
        let s = S3Settings {
            bucket: "b".into(),
            prefix: String::new(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            credentials: Some(c.clone()),
            cache_bytes: 1 << 20,
            chunk_bytes: 1 << 16,
            timeout: Duration::from_millis(200),
        };
        let b = Bucket::open(&s).unwrap();
        for text in [format!("{c:?}"), format!("{s:?}"), format!("{b:?}")] {
            assert!(!text.contains("wJalrXUtnFEMIK7MDENGbPxRfiCY"), "{text}");
        }
    }

    #[test]
    fn unreachable_bucket_fails_within_the_deadline() {
        let s = S3Settings {
            bucket: "b".into(),
            prefix: "p/".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            region: "us-east-1".into(),
            credentials: None,
            cache_bytes: 1 << 20,
            chunk_bytes: 1 << 16,
            timeout: Duration::from_millis(300),
        };
        let b = Bucket::open(&s).unwrap();
        assert!(b.list().is_err());
        let e = b.read_cached(1, "a.mp4", "\"e\"", 100, 0, 10).unwrap_err();
        assert!(e.to_string().contains("a.mp4"), "{e}");
        assert_eq!(b.traffic.errors.load(Ordering::Relaxed), 1);
    }
}
