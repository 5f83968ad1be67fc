//! The hyper server: accept loop, per-connection limits and timeouts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::app::App;
use super::dispatch::handle;
use super::idle::IdleTimeout;

/// Connection-level limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// A client must send a complete request head within this time.
    pub header_read_timeout: Duration,
    /// A connection with no read or write progress for this long is closed.
    pub idle_timeout: Duration,
    /// Connections served at once; further ones wait in the accept backlog.
    pub max_connections: usize,
}

/// Serves `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
            let service = service_fn(move |req| handle(app.clone(), req));
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true)
                .max_buf_size(64 * 1024)
                .serve_connection(io, service);
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
}
