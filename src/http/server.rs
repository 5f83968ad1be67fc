//! The hyper server: accept loops (cleartext HTTP/1.1, and TLS with ALPN h2 / http/1.1),
//! per-connection limits and timeouts, and the graceful drain on shutdown.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::app::App;
use super::dispatch::handle;
use super::idle::IdleTimeout;

/// Connection-level limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A client must send a complete request head within this time (and finish a TLS handshake).
    pub header_read_timeout: Duration,
    /// A connection with no read or write progress for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once (all listeners together); further ones wait in the backlog.
    pub max_connections: usize,
    /// After the shutdown signal, how long in-flight requests may run on before they are cut.
    pub drain: Duration,
}

/// A bound socket and what it speaks.
pub struct Listener {
    /// The socket.
    pub socket: TcpListener,
    /// `Some`: TLS, ALPN h2 and http/1.1; `None`: cleartext HTTP/1.1.
    pub tls: Option<TlsAcceptor>,
}

/// Serves every listener until `shutdown` resolves, then drains: the listeners are closed at
/// once (new connections are refused), `/readyz` answers 503, idle keep-alive connections are
/// closed, HTTP/2 connections get a GOAWAY, and requests in flight run on for up to
/// `limits.drain`.
pub async fn serve(
    listeners: Vec<Listener>,
    app: Arc<App>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    // Each accept loop creates a connection's shutdown watcher before the drain starts, so no
    // accepted connection misses the signal; the loops lend `graceful` through a channel.
    let (watchers_tx, mut watchers_rx) = tokio::sync::mpsc::channel::<tokio::sync::oneshot::Sender<Watcher>>(64);
    let mut loops = Vec::new();
    for l in listeners {
        let ctx = Accept {
            app: app.clone(),
            limits: limits.clone(),
            permits: permits.clone(),
            stop: stop_rx.clone(),
            watchers: watchers_tx.clone(),
        };
        loops.push(tokio::spawn(ctx.run(l)));
    }
    drop(watchers_tx);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            w = watchers_rx.recv() => match w {
                Some(reply) => { let _ = reply.send(graceful.watcher()); }
                None => break,
            },
        }
    }
    app.draining.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    // Accept loops hand back their sockets (closed on drop) and stop asking for watchers.
    watchers_rx.close();
    while let Some(reply) = watchers_rx.recv().await {
        let _ = reply.send(graceful.watcher());
    }
    for l in loops {
        let _ = l.await;
    }
    let open = graceful.count();
    tracing::info!(connections = open, drain_secs = limits.drain.as_secs(), "draining");
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!("drain time over: cutting the connections still open");
    }
}

struct Accept {
    app: Arc<App>,
    limits: Limits,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
    watchers: tokio::sync::mpsc::Sender<tokio::sync::oneshot::Sender<Watcher>>,
}

impl Accept {
    async fn run(mut self, l: Listener) {
        loop {
            let permit = tokio::select! {
                p = self.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                () = stopped(&mut self.stop) => return,
            };
            let (stream, peer): (TcpStream, SocketAddr) = tokio::select! {
                r = l.socket.accept() => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = stopped(&mut self.stop) => return,
            };
            let (reply, watcher) = tokio::sync::oneshot::channel();
            if self.watchers.send(reply).await.is_err() {
                return;
            }
            let Ok(watcher) = watcher.await else { return };
            let _ = stream.set_nodelay(true);
            let app = self.app.clone();
            let limits = self.limits.clone();
            let tls = l.tls.clone();
            tokio::spawn(async move {
                let io = IdleTimeout::new(stream, limits.idle_timeout);
                match tls {
                    None => connection(io, false, app, &limits, watcher, peer).await,
                    Some(acceptor) => {
                        let tls = tokio::time::timeout(limits.header_read_timeout, acceptor.accept(io)).await;
                        match tls {
                            Ok(Ok(s)) => connection(s, true, app, &limits, watcher, peer).await,
                            Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                        }
                    }
                }
                drop(permit);
            });
        }
    }
}

/// Resolves once the drain has started.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped at once: it must not live across an await.
    let _ = stop.wait_for(|s| *s).await.map(|_| ());
}

/// Serves one connection: HTTP/1.1 only in cleartext (CDNs pull over plain HTTP/1.1), HTTP/1.1
/// or HTTP/2 by ALPN over TLS.
async fn connection<I>(io: I, h2: bool, app: Arc<App>, limits: &Limits, watcher: Watcher, peer: SocketAddr)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(app.clone(), req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_buf_size(64 * 1024);
    builder.http2().timer(TokioTimer::new()).max_concurrent_streams(256);
    let builder = if h2 { builder } else { builder.http1_only() };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
    }
}
