//! Keep-alive HTTP/1.1 connections to one `http://` upstream, for the gateway's proxy.
//!
//! The exchange is the request's own task's work: it writes the request ([`super::http1`]),
//! reads the answer's head, and hands back a body ([`PooledBody`]) that reads the rest from
//! the connection as the gateway's server asks for it. No task per connection, no channel
//! between the request and its connection (BENCHMARKS.md section 5: hyper's client
//! connection, its driver task and the hop to it were the largest part of the proxy's own CPU
//! per request). Idle connections wait on a stack (the most recently used first) behind a
//! lock held for a few pointer moves; a connection goes back on it when its answer's body has
//! been read to its end, if the upstream keeps it open. A body dropped before its end takes
//! its connection with it. One task per pool drops connections idle for longer than
//! [`IDLE_TIMEOUT`], or closed by the upstream.
//!
//! A request that finds its idle connection closed by the upstream is sent again on another
//! one when that cannot make the upstream act twice: when the request's head could not be
//! written, or when the connection closed before any answer and the request has no body and
//! an idempotent method (RFC 9110 §9.2.2), as nginx retries on its cached connections.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, Waker, ready};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, header};
use bytes::{BufMut as _, Bytes, BytesMut};
use hyper::body::{Body as _, Frame, SizeHint};
use hyper::{Request, Response};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::http1::{self, BodyFraming, Chunked, Decoded, Head, RequestFraming, WireError};

/// Idle keep-alive connections kept to the upstream, as many as nginx's pool in the benchmark.
pub(crate) const MAX_IDLE: usize = 64;
/// How long an idle connection is kept (reqwest's default, which this proxy used).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections (reqwest's defaults, kept).
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;
/// Room made in a connection's buffer before a read; a body's reads take up to `BODY_READ`.
const READ_CHUNK: usize = 8 * 1024;
const BODY_READ: usize = 64 * 1024;

/// Why a request did not get an answer from the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(#[source] io::Error),
    #[error(transparent)]
    Wire(#[from] WireError),
}

/// One connection and what has been read from it and not yet used.
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

impl Conn {
    /// Whether an idle connection has something to read: the upstream closed it (or sent what
    /// nobody asked for). The reactor's readiness answers without a system call when nothing
    /// came; when it says something may have (it also stays set after a read that filled the
    /// buffer), a read tells.
    fn stale(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        if self.stream.poll_read_ready(&mut cx).is_pending() {
            return false;
        }
        // Anything read makes the connection unusable, so it may as well be consumed.
        !matches!(self.stream.try_read(&mut [0u8; 1]), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// The answer's head, read from the connection.
    async fn read_head(&mut self, to_head: bool) -> Result<Head, WireError> {
        let mut received = !self.buf.is_empty();
        loop {
            if !self.buf.is_empty()
                && let Some(head) = http1::parse_head(&mut self.buf, to_head)?
            {
                return Ok(head);
            }
            self.buf.reserve(READ_CHUNK);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) if !received => return Err(WireError::Closed),
                Ok(0) => return Err(WireError::Truncated),
                Ok(_) => received = true,
                Err(e) if !received && closed(&e) => return Err(WireError::Closed),
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Send the request's body as `framing` says; each of the client's frames, and each write
    /// to the upstream, within `patience`.
    async fn write_body(
        &mut self,
        mut body: Body,
        framing: RequestFraming,
        patience: Duration,
    ) -> Result<(), WireError> {
        let mut sent = 0u64;
        loop {
            let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx));
            let Some(frame) = tokio::time::timeout(patience, next)
                .await
                .map_err(|_| WireError::ClientStalled)?
            else {
                break;
            };
            let frame = frame.map_err(|e| WireError::RequestBody(e.to_string()))?;
            // Trailers are not passed on.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            sent += data.len() as u64;
            match framing {
                RequestFraming::Chunked => {
                    let mut chunk = BytesMut::with_capacity(data.len() + 20);
                    chunk.put_slice(format!("{:x}\r\n", data.len()).as_bytes());
                    chunk.put_slice(&data);
                    chunk.put_slice(b"\r\n");
                    self.write_within(&chunk, patience).await?;
                }
                RequestFraming::Length(n) if sent <= n => {
                    self.write_within(&data, patience).await?;
                }
                _ => return Err(WireError::RequestBody("longer than its length".into())),
            }
        }
        match framing {
            RequestFraming::Chunked => self.write_within(b"0\r\n\r\n", patience).await?,
            RequestFraming::Length(n) if sent != n => {
                return Err(WireError::RequestBody("shorter than its length".into()));
            }
            _ => {}
        }
        Ok(())
    }

    /// Write `bytes` to the upstream, which must take them within `patience`.
    async fn write_within(&mut self, bytes: &[u8], patience: Duration) -> Result<(), WireError> {
        let write = async { self.stream.write_all(bytes).await.map_err(WireError::from) };
        within(Some(patience), write).await
    }
}

/// `step`, which must be done within `limit` when there is one (else the upstream is too slow).
async fn within<T, E: From<WireError>>(
    limit: Option<Duration>,
    step: impl Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, step)
            .await
            .unwrap_or_else(|_| Err(WireError::TimedOut.into())),
        None => step.await,
    }
}

/// Whether a read error means the peer closed the connection.
fn closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

struct Idle {
    conn: Conn,
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
    ///
    /// `patience`, as nginx's `proxy_read_timeout` and `client_body_timeout`: a request without
    /// a body must have its answer's head within it. One with a body must reach the upstream
    /// (connection and head) within it, then each of its frames from the client and each write
    /// to the upstream must take no longer, and its answer's head must come within it once the
    /// body is sent: an upload longer than `patience` that keeps moving is not cut off.
    pub(crate) async fn send(
        self: &Arc<Self>,
        request: Request<Body>,
        patience: Duration,
    ) -> Result<Response<PooledBody>, SendError> {
        if request.body().is_end_stream() {
            // One deadline for the whole exchange: one timer per request, as before.
            return within(Some(patience), self.exchange(request, patience)).await;
        }
        self.exchange(request, patience).await
    }

    /// [`Pool::send`]: a request with a body has each step within `patience`; the caller
    /// bounds the whole exchange of one without.
    async fn exchange(
        self: &Arc<Self>,
        request: Request<Body>,
        patience: Duration,
    ) -> Result<Response<PooledBody>, SendError> {
        let (parts, body) = request.into_parts();
        let empty = body.is_end_stream();
        let steps = (!empty).then_some(patience);
        let framing = RequestFraming::choose(
            &parts.method,
            empty,
            body.size_hint().exact(),
            parts.headers.contains_key(header::CONTENT_LENGTH),
        );
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let mut head = Vec::with_capacity(256 + 64 * parts.headers.len());
        http1::encode_request_head(&mut head, &parts.method, target, &parts.headers, framing);
        let to_head = parts.method == Method::HEAD;
        let replayable = empty && parts.method.is_idempotent();
        let mut body = (!empty).then_some(body);
        loop {
            let reached = within(steps, async {
                let (mut conn, reused) = match self.checkout() {
                    Some(conn) => (conn, true),
                    None => (self.connect().await?, false),
                };
                let written = conn.stream.write_all(&head).await;
                Ok::<_, SendError>((conn, reused, written))
            });
            let (mut conn, reused, written) = reached.await?;
            if let Err(e) = written {
                // The upstream did not get the whole request (nor its body): another
                // connection may take it.
                if reused {
                    continue;
                }
                return Err(WireError::Io(e).into());
            }
            if let Some(body) = body.take()
                && let Err(e) = conn.write_body(body, framing, patience).await
            {
                // The upstream may have answered before taking the whole body (a 413, say)
                // and closed: that answer is passed on, on a connection not kept.
                if let WireError::Io(_) = e
                    && let Ok(mut head) = within(steps, conn.read_head(to_head)).await
                {
                    head.keep_alive = false;
                    return Ok(self.answer(conn, head));
                }
                return Err(e.into());
            }
            match within(steps, conn.read_head(to_head)).await {
                Ok(head) => return Ok(self.answer(conn, head)),
                Err(WireError::Closed) if reused && replayable => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn answer(self: &Arc<Self>, conn: Conn, head: Head) -> Response<PooledBody> {
        let Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        } = head;
        let mut response = Response::new(PooledBody::new(conn, framing, keep_alive, self.clone()));
        *response.status_mut() = status;
        *response.version_mut() = version;
        *response.headers_mut() = headers;
        response
    }

    /// The most recently used idle connection still open, dropping closed and expired ones
    /// on the way.
    fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        while let Some(c) = idle.pop() {
            if now.duration_since(c.since) < self.idle_timeout && !c.conn.stale() {
                return Some(c.conn);
            }
        }
        None
    }

    /// Put a connection whose last answer was read back on the stack.
    fn checkin(&self, mut conn: Conn) {
        if conn.buf.capacity() > BODY_READ {
            // A large answer's buffer is not kept for an idle connection.
            conn.buf = BytesMut::new();
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// Drop connections idle for longer than the timeout, or closed by the upstream.
    fn reap(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        idle.retain(|c| now.duration_since(c.since) < self.idle_timeout && !c.conn.stale());
    }

    /// Number of idle connections (tests).
    #[cfg(test)]
    fn idle_len(&self) -> usize {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    async fn connect(self: &Arc<Self>) -> Result<Conn, SendError> {
        let stream = TcpStream::connect((self.host.as_str(), self.port))
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
        self.start_reaper();
        Ok(Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        })
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

/// An upstream answer's body, read from its connection as it is polled; returns the
/// connection to the pool once read to its end.
pub(crate) struct PooledBody {
    /// `None` once the body is read (or broken).
    conn: Option<Conn>,
    state: BodyState,
    keep_alive: bool,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for PooledBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledBody")
            .field("state", &self.state)
            .field("keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum BodyState {
    /// This many bytes left.
    Length(u64),
    Chunked(Chunked),
    /// Until the upstream closes.
    Close,
    Done,
}

/// What a poll of the body does next, decided while the connection is borrowed.
enum Step {
    Yield(Bytes),
    /// Yield this last piece, then the body is read.
    Last(Bytes),
    End,
    Read,
    Fail(WireError),
}

impl PooledBody {
    fn new(conn: Conn, framing: BodyFraming, keep_alive: bool, pool: Arc<Pool>) -> PooledBody {
        let state = match framing {
            BodyFraming::Empty | BodyFraming::Length(0) => BodyState::Done,
            BodyFraming::Length(n) => BodyState::Length(n),
            BodyFraming::Chunked => BodyState::Chunked(Chunked::new()),
            BodyFraming::Close => BodyState::Close,
        };
        let mut body = PooledBody {
            conn: Some(conn),
            state,
            keep_alive,
            pool,
        };
        // No body: the server may never poll it.
        if matches!(body.state, BodyState::Done) {
            body.release();
        }
        body
    }

    /// The body is read: its connection goes back to the pool if it can carry another request
    /// (nothing unread after the answer).
    fn release(&mut self) {
        self.state = BodyState::Done;
        if let Some(conn) = self.conn.take()
            && self.keep_alive
            && conn.buf.is_empty()
        {
            self.pool.checkin(conn);
        }
    }

    fn step(&mut self) -> Step {
        let Some(conn) = self.conn.as_mut() else {
            return Step::End;
        };
        match &mut self.state {
            BodyState::Done => Step::End,
            BodyState::Length(left) => {
                if conn.buf.is_empty() {
                    return Step::Read;
                }
                let n = usize::try_from(*left).map_or(conn.buf.len(), |l| l.min(conn.buf.len()));
                let data = conn.buf.split_to(n).freeze();
                *left -= n as u64;
                if *left == 0 {
                    Step::Last(data)
                } else {
                    Step::Yield(data)
                }
            }
            BodyState::Chunked(chunked) => match chunked.decode(&mut conn.buf) {
                Ok(Decoded::Data(data)) => Step::Yield(data),
                Ok(Decoded::End) => Step::End,
                Ok(Decoded::NeedMore) => Step::Read,
                Err(e) => Step::Fail(e),
            },
            BodyState::Close if conn.buf.is_empty() => Step::Read,
            BodyState::Close => Step::Yield(conn.buf.split().freeze()),
        }
    }

    /// Read more of the answer into the connection's buffer: `Ok(false)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, WireError>> {
        let want = match self.state {
            BodyState::Length(left) => {
                usize::try_from(left).map_or(BODY_READ, |l| l.clamp(READ_CHUNK, BODY_READ))
            }
            _ => READ_CHUNK,
        };
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        conn.buf.reserve(want);
        let n = ready!(tokio_util::io::poll_read_buf(
            Pin::new(&mut conn.stream),
            cx,
            &mut conn.buf
        ))?;
        Poll::Ready(Ok(n > 0))
    }
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = WireError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, WireError>>> {
        let this = self.get_mut();
        loop {
            let failed = match this.step() {
                Step::Yield(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Step::Last(data) => {
                    // The server may not poll a body of known length again.
                    this.release();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Step::End => {
                    this.release();
                    return Poll::Ready(None);
                }
                Step::Fail(e) => e,
                Step::Read => match ready!(this.poll_fill(cx)) {
                    Ok(true) => continue,
                    // Only a body that runs to the connection's close ends here.
                    Ok(false) if matches!(this.state, BodyState::Close) => {
                        this.release();
                        return Poll::Ready(None);
                    }
                    Ok(false) => WireError::Truncated,
                    Err(e) => e,
                },
            };
            // A broken answer: its connection is not reused.
            this.conn = None;
            this.state = BodyState::Done;
            return Poll::Ready(Some(Err(failed)));
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, BodyState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            BodyState::Length(n) => SizeHint::with_exact(n),
            BodyState::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header;

    /// The patience of requests that are not about timeouts.
    const WAIT: Duration = Duration::from_secs(60);

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
        let r = pool.send(get("h"), WAIT).await.unwrap();
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
            let r = pool.send(get("h"), WAIT).await.unwrap();
            read(r).await;
        }
        assert_eq!(pool.idle_len(), 1);
        // A body dropped unread takes its connection with it.
        let r = pool.send(get("h"), WAIT).await.unwrap();
        drop(r);
        assert_eq!(pool.idle_len(), 0);
        let r = pool.send(get("h"), WAIT).await.unwrap();
        read(r).await;
        assert_eq!(pool.idle_len(), 1);
    }

    #[tokio::test]
    async fn idle_connections_are_capped_and_expire() {
        let addr = upstream().await;
        let pool = Pool::new(addr.ip().to_string(), addr.port());
        let answers =
            futures::future::join_all((0..MAX_IDLE + 3).map(|_| pool.send(get("h"), WAIT))).await;
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

    /// A scripted upstream: for the n-th request it reads (a head, no body), it writes
    /// `answers[n].0` and, if `answers[n].1`, closes the connection. It counts connections and
    /// keeps the request heads.
    struct Script {
        addr: std::net::SocketAddr,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        heads: Arc<Mutex<Vec<String>>>,
    }

    async fn script(answers: Vec<(&'static [u8], bool)>) -> Script {
        use tokio::io::AsyncReadExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let heads = Arc::new(Mutex::new(Vec::new()));
        let answers = Arc::new(Mutex::new(answers.into_iter()));
        let (count, seen) = (connections.clone(), heads.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                count.fetch_add(1, Ordering::SeqCst);
                let (answers, seen) = (answers.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    loop {
                        let mut chunk = [0u8; 4096];
                        let n = match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head: Vec<u8> = buf.drain(..end + 4).collect();
                            seen.lock().unwrap().push(String::from_utf8(head).unwrap());
                            let Some((answer, close)) = answers.lock().unwrap().next() else {
                                return;
                            };
                            // In two writes, so that the reader meets a partial answer.
                            let half = answer.len() / 2;
                            s.write_all(&answer[..half]).await.unwrap();
                            s.flush().await.unwrap();
                            tokio::time::sleep(Duration::from_millis(5)).await;
                            s.write_all(&answer[half..]).await.unwrap();
                            if close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Script {
            addr,
            connections,
            heads,
        }
    }

    fn pool_for(s: &Script) -> Arc<Pool> {
        Pool::new(s.addr.ip().to_string(), s.addr.port())
    }

    fn request(method: Method, body: Body) -> Request<Body> {
        Request::builder()
            .method(method)
            .uri("/x?y=1")
            .header(header::HOST, "up")
            .body(body)
            .unwrap()
    }

    #[tokio::test]
    async fn chunked_and_close_delimited_answers_are_read_whole() {
        let s = script(vec![
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                false,
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", true),
        ])
        .await;
        let pool = pool_for(&s);
        let r = pool.send(get("up"), WAIT).await.unwrap();
        assert_eq!(r.headers()["transfer-encoding"], "chunked");
        assert_eq!(&read(r).await[..], b"hello world");
        assert_eq!(
            pool.idle_len(),
            1,
            "a chunked answer leaves the connection usable"
        );
        let r = pool.send(get("up"), WAIT).await.unwrap();
        assert_eq!(&read(r).await[..], b"until the end");
        assert_eq!(
            pool.idle_len(),
            0,
            "a close-delimited answer ends its connection"
        );
        assert_eq!(s.connections.load(Ordering::SeqCst), 1);
        let heads = s.heads.lock().unwrap().clone();
        assert_eq!(heads[0], "GET /x HTTP/1.1\r\nhost: up\r\n\r\n");
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    #[tokio::test]
    async fn a_closed_idle_connection_is_replaced_for_a_request_that_may_be_repeated() {
        // The first connection answers once, then reads the next request and closes without
        // answering: the GET goes again, on a new connection.
        let s = script(vec![(OK, false), (b"", true), (OK, false)]).await;
        let pool = pool_for(&s);
        read(pool.send(get("up"), WAIT).await.unwrap()).await;
        assert_eq!(pool.idle_len(), 1);
        let r = pool.send(get("up"), WAIT).await.unwrap();
        assert_eq!(&read(r).await[..], b"ok");
        assert_eq!(s.heads.lock().unwrap().len(), 3, "sent again once");
        assert_eq!(s.connections.load(Ordering::SeqCst), 2);

        // A POST is never sent twice: the client gets the error.
        let s = script(vec![(OK, false), (b"", true), (OK, false)]).await;
        let pool = pool_for(&s);
        read(pool.send(get("up"), WAIT).await.unwrap()).await;
        let r = pool.send(request(Method::POST, Body::empty()), WAIT).await;
        assert!(
            matches!(r, Err(SendError::Wire(WireError::Closed))),
            "{r:?}"
        );
        assert_eq!(s.heads.lock().unwrap().len(), 2);

        // A connection the upstream closed while idle is not used.
        let s = script(vec![(OK, true), (OK, false)]).await;
        let pool = pool_for(&s);
        read(pool.send(get("up"), WAIT).await.unwrap()).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = pool.send(get("up"), WAIT).await.unwrap();
        assert_eq!(&read(r).await[..], b"ok");
        assert_eq!(s.connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn broken_answers_are_errors_and_their_connections_dropped() {
        let s = script(vec![
            (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", true),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                false,
            ),
            (b"HTTP/1.1 204 No Content\r\n\r\n", false),
        ])
        .await;
        let pool = pool_for(&s);
        for _ in 0..2 {
            let r = pool.send(get("up"), WAIT).await.unwrap();
            let got = axum::body::to_bytes(Body::new(r.into_body()), usize::MAX).await;
            assert!(got.is_err());
            assert_eq!(pool.idle_len(), 0);
        }
        // Bytes after the answer, or `Connection: close`: read, but not reused.
        for _ in 0..2 {
            let r = pool.send(get("up"), WAIT).await.unwrap();
            assert_eq!(&read(r).await[..], b"ok");
            assert_eq!(pool.idle_len(), 0);
        }
        // No body: the connection is back at once.
        let r = pool.send(get("up"), WAIT).await.unwrap();
        assert_eq!(r.status(), 204);
        assert_eq!(pool.idle_len(), 1);
        assert_eq!(
            s.connections.load(Ordering::SeqCst),
            5,
            "each broken or closing answer took its connection"
        );
    }

    #[tokio::test]
    async fn an_answer_sent_before_the_whole_body_was_taken_is_passed_on() {
        // The upstream answers 413 after the head and closes with most of the body unread.
        let s = script(vec![(
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo big!",
            true,
        )])
        .await;
        let pool = pool_for(&s);
        static BLOCK: [u8; 64 * 1024] = [b'x'; 64 * 1024];
        // 64 MiB: more than the two sockets' buffers take, so the write meets the close.
        let blocks = futures::stream::iter(
            std::iter::repeat_n(Bytes::from_static(&BLOCK), 1024).map(Ok::<_, io::Error>),
        );
        let r = pool
            .send(request(Method::POST, Body::from_stream(blocks)), WAIT)
            .await
            .unwrap();
        assert_eq!(r.status(), axum::http::StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(&read(r).await[..], b"too big!");
        assert_eq!(pool.idle_len(), 0, "a connection that broke is not kept");
    }

    #[tokio::test]
    async fn request_bodies_are_framed_by_length_or_in_chunks() {
        // An upstream on hyper's server that answers with what it got.
        let app = axum::Router::new().fallback(|req: Request<Body>| async move {
            let (parts, body) = req.into_parts();
            let framing = match (
                parts.headers.get(header::CONTENT_LENGTH),
                parts.headers.get(header::TRANSFER_ENCODING),
            ) {
                (Some(l), None) => format!("length {}", l.to_str().unwrap()),
                (None, Some(t)) => format!("te {}", t.to_str().unwrap()),
                (None, None) => "none".to_owned(),
                _ => "both".to_owned(),
            };
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            format!(
                "{} {} {framing} {}",
                parts.method,
                parts.uri,
                String::from_utf8_lossy(&body)
            )
        });
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        let pool = Pool::new(addr.ip().to_string(), addr.port());
        let text = |r: Response<PooledBody>| async move {
            String::from_utf8(read(r).await.to_vec()).unwrap()
        };

        let mut with_length = request(Method::POST, Body::from("0123456789"));
        with_length
            .headers_mut()
            .insert(header::CONTENT_LENGTH, "10".parse().unwrap());
        let r = pool.send(with_length, WAIT).await.unwrap();
        assert_eq!(text(r).await, "POST /x?y=1 length 10 0123456789");

        let parts = futures::stream::iter(["ab", "", "cde", "f"].map(Ok::<_, std::io::Error>));
        let r = pool
            .send(request(Method::PUT, Body::from_stream(parts)), WAIT)
            .await
            .unwrap();
        assert_eq!(text(r).await, "PUT /x?y=1 te chunked abcdef");

        let r = pool
            .send(request(Method::POST, Body::empty()), WAIT)
            .await
            .unwrap();
        assert_eq!(text(r).await, "POST /x?y=1 length 0 ");
        let r = pool
            .send(request(Method::DELETE, Body::empty()), WAIT)
            .await
            .unwrap();
        assert_eq!(text(r).await, "DELETE /x?y=1 none ");
        // Every exchange on the one connection.
        assert_eq!(pool.idle_len(), 1);

        // A body that does not have the length it announced: an error, nothing reused.
        struct Lying(Option<Bytes>);
        impl hyper::body::Body for Lying {
            type Data = Bytes;
            type Error = std::io::Error;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                _: &mut Context<'_>,
            ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
                Poll::Ready(self.0.take().map(|b| Ok(Frame::data(b))))
            }
            fn size_hint(&self) -> SizeHint {
                SizeHint::with_exact(3)
            }
        }
        let lying = Body::new(Lying(Some(Bytes::from_static(b"ab"))));
        let r = pool.send(request(Method::POST, lying), WAIT).await;
        assert!(
            matches!(r, Err(SendError::Wire(WireError::RequestBody(_)))),
            "{r:?}"
        );
    }
}
