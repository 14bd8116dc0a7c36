//! Keep-alive HTTP/1.1 connections to one `http://` upstream, for the gateway's proxy.
//!
//! hyper's connection API with a pool of our own, in place of hyper-util's legacy `Client`
//! (BENCHMARKS.md section 5): that client spawned a task per request to put the connection
//! back in its pool once it was ready again, and keyed its pool by a hashed scheme and
//! authority. Here a connection's driver task is spawned once, when it is opened; idle
//! connections wait on a stack (the most recently used first) behind a lock held for a few
//! pointer moves; and a connection goes back on the stack when its response's body has been
//! read to its end ([`PooledBody`]). A body dropped before its end takes its connection with
//! it (hyper closes a connection whose answer was not read). One task per pool drops
//! connections idle for longer than [`IDLE_TIMEOUT`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tracing::debug;

/// Idle keep-alive connections kept to the upstream, as many as nginx's pool in the benchmark.
pub(crate) const MAX_IDLE: usize = 64;
/// How long an idle connection is kept (reqwest's default, which this proxy used).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections (reqwest's defaults, kept).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

/// Why a request did not get an answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] std::io::Error),
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

struct Idle {
    send: SendRequest<Body>,
    since: Instant,
}

/// Connections to one upstream address.
pub(crate) struct Pool {
    /// Host name or IP address (without brackets) and port.
    host: String,
    port: u16,
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
    reaper: AtomicBool,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("host", &self.host)
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl Pool {
    pub(crate) fn new(host: String, port: u16) -> Arc<Pool> {
        Arc::new(Pool {
            host,
            port,
            idle: Mutex::new(Vec::new()),
            idle_timeout: IDLE_TIMEOUT,
            reaper: AtomicBool::new(false),
        })
    }

    /// Send `request` (origin-form URI, `Host` set) on an idle connection, or a new one; the
    /// answer's head, with its body holding the connection until the body is read.
    pub(crate) async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<PooledBody>, SendError> {
        loop {
            let (mut send, reused) = match self.checkout() {
                Some(send) => (send, true),
                None => (self.connect().await?, false),
            };
            match send.try_send_request(request).await {
                Ok(response) => {
                    let pool = self.clone();
                    return Ok(response.map(|body| PooledBody::new(body, send, pool)));
                }
                Err(mut e) => match e.take_message() {
                    // Not sent: the idle connection closed under us. Another, or a new one.
                    Some(r) if reused => request = r,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// The most recently used idle connection ready for a request, dropping closed and
    /// expired ones on the way.
    fn checkout(&self) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let mut busy = Vec::new();
        let mut found = None;
        while let Some(c) = idle.pop() {
            if c.send.is_closed() || now.duration_since(c.since) >= self.idle_timeout {
                continue;
            }
            if c.send.is_ready() {
                found = Some(c.send);
                break;
            }
            // Still finishing its last exchange (rare: its driver has not run since): later.
            busy.push(c);
        }
        idle.extend(busy.into_iter().rev());
        found
    }

    /// Put a connection whose last answer was read back on the stack.
    fn checkin(&self, send: SendRequest<Body>) {
        if send.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                send,
                since: Instant::now(),
            });
        }
    }

    /// Drop connections idle for longer than the timeout (the oldest are at the bottom).
    fn reap(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        idle.retain(|c| !c.send.is_closed() && now.duration_since(c.since) < self.idle_timeout);
    }

    /// Number of idle connections (tests).
    #[cfg(test)]
    fn idle_len(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    async fn connect(self: &Arc<Self>) -> Result<SendRequest<Body>, SendError> {
        let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(SendError::Connect)?;
        // reqwest's socket options, which this proxy had: no Nagle delay, TCP keep-alive.
        stream.set_nodelay(true).map_err(SendError::Connect)?;
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(TCP_KEEPALIVE)
            .with_interval(TCP_KEEPALIVE)
            .with_retries(TCP_KEEPALIVE_RETRIES);
        socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&keepalive)
            .map_err(SendError::Connect)?;
        let (send, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                debug!(error = %e, "upstream connection ended");
            }
        });
        self.start_reaper();
        Ok(send)
    }

    /// Once per pool, on the runtime of its first connection: drop expired idle connections
    /// every third of the timeout, until the pool is gone.
    fn start_reaper(self: &Arc<Self>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let pool: Weak<Pool> = Arc::downgrade(self);
        let every = self.idle_timeout / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match pool.upgrade() {
                    Some(p) => p.reap(),
                    None => break,
                }
            }
        });
    }
}

/// An upstream answer's body: returns its connection to the pool once read to its end.
pub(crate) struct PooledBody {
    inner: Incoming,
    back: Option<(SendRequest<Body>, Arc<Pool>)>,
}

impl PooledBody {
    fn new(inner: Incoming, send: SendRequest<Body>, pool: Arc<Pool>) -> PooledBody {
        let mut body = PooledBody {
            inner,
            back: Some((send, pool)),
        };
        // No body (HEAD, 204, 304, a zero length): the server may never poll it.
        if hyper::body::Body::is_end_stream(&body.inner) {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((send, pool)) = self.back.take() {
            pool.checkin(send);
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.release(),
            // The last frame of a body of known length: the server may not poll again.
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            // A broken answer: its connection is not reused.
            Poll::Ready(Some(Err(_))) => this.back = None,
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    async fn read(r: Response<PooledBody>) -> Bytes {
        axum::body::to_bytes(Body::new(r.into_body()), usize::MAX)
            .await
            .unwrap()
    }

    fn get(host: &str) -> Request<Body> {
        Request::builder()
            .uri("/x")
            .header(header::HOST, host)
            .body(Body::empty())
            .unwrap()
    }

    /// An upstream answering "ok" to everything, on hyper's server.
    async fn upstream() -> std::net::SocketAddr {
        let app = axum::Router::new().fallback(|| async { "ok" });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        addr
    }

    #[tokio::test]
    async fn a_connection_is_reused_only_after_its_body_was_read() {
        let addr = upstream().await;
        let pool = Pool::new(addr.ip().to_string(), addr.port());
        let r = pool.send(get("h")).await.unwrap();
        assert_eq!(
            pool.idle_len(),
            0,
            "back in the pool before its body was read"
        );
        let body = read(r).await;
        assert_eq!(&body[..], b"ok");
        assert_eq!(pool.idle_len(), 1);
        // Sequential requests share the one connection.
        for _ in 0..5 {
            let r = pool.send(get("h")).await.unwrap();
            read(r).await;
        }
        assert_eq!(pool.idle_len(), 1);
        // A body dropped unread takes its connection with it.
        let r = pool.send(get("h")).await.unwrap();
        drop(r);
        assert_eq!(pool.idle_len(), 0);
        let r = pool.send(get("h")).await.unwrap();
        read(r).await;
        assert_eq!(pool.idle_len(), 1);
    }

    #[tokio::test]
    async fn idle_connections_are_capped_and_expire() {
        let addr = upstream().await;
        let pool = Pool::new(addr.ip().to_string(), addr.port());
        let answers =
            futures::future::join_all((0..MAX_IDLE + 3).map(|_| pool.send(get("h")))).await;
        for r in answers {
            read(r.unwrap()).await;
        }
        assert_eq!(pool.idle_len(), MAX_IDLE);
        let mut expiring = Arc::into_inner(pool).unwrap();
        expiring.idle_timeout = Duration::ZERO;
        let pool = Arc::new(expiring);
        pool.reap();
        assert_eq!(pool.idle_len(), 0);
    }
}
