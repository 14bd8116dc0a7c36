//! The HTTP/1.1 servers' accept loop, over hyper's connection API, in place of `axum::serve`:
//! the gateway's, straight into [`Gateway::answer`] (which knows the client's address without an
//! extensions map: the free tier and `X-Forwarded-For` need it), and any axum router's (the MCP
//! transports, `mcp-gateway`, the dashboard).
//!
//! Unlike `axum::serve`, a connection whose request head does not come within
//! [`HEADER_READ_TIMEOUT`] is closed (`axum::serve` runs hyper without a timer, so a client that
//! never finishes a head held its connection for ever); no HTTP/2 preface is sniffed for (these
//! servers speak HTTP/1.1, as the gateway's proxy does to its upstream); and `TCP_NODELAY` is set
//! on accepted connections, as nginx does on keep-alive ones.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::response::Response;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::gateway::Gateway;

/// How long a client may take to send a request's head, counted from when the server starts
/// waiting for it, so also how long a kept-alive connection may sit idle; then the connection
/// is closed. Without it a client that never finishes its head holds a connection (and its
/// task) for ever. nginx: `client_header_timeout` 60 s, `keepalive_timeout` 75 s.
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve the gateway `app` on `listener` until `shutdown`; then stop accepting, let every open
/// connection finish the request it is serving, and return when the last one has closed.
pub async fn serve_on(listener: TcpListener, app: Gateway, shutdown: CancellationToken) {
    serve_gateway(listener, app, shutdown, HEADER_READ_TIMEOUT).await;
}

/// [`serve_on`], with the time a request's head may take.
async fn serve_gateway(
    listener: TcpListener,
    app: Gateway,
    shutdown: CancellationToken,
    head_timeout: Duration,
) {
    let app = Arc::new(app);
    let answer = move |request, peer| {
        let app = app.clone();
        async move { app.answer(request, peer).await }
    };
    serve_with(listener, answer, shutdown, head_timeout).await;
}

/// [`serve_on`] for an axum router.
pub(crate) async fn serve_router(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) {
    let answer = move |request, _peer| {
        let router = router.clone();
        async move {
            match router.oneshot(request).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    serve_with(listener, answer, shutdown, HEADER_READ_TIMEOUT).await;
}

/// Serve `answer` on `listener` until `shutdown` (see [`serve_on`]), with the time a request's
/// head may take.
async fn serve_with<A, F>(
    listener: TcpListener,
    answer: A,
    shutdown: CancellationToken,
    head_timeout: Duration,
) where
    A: Fn(axum::http::Request<Body>, SocketAddr) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let (answer, shutdown) = (answer.clone(), shutdown.clone());
                    connections.spawn(connection(stream, peer, answer, shutdown, head_timeout));
                }
                Err(e) => {
                    tokio::select! {
                        _ = accept_failed(e) => {}
                        _ = shutdown.cancelled() => break,
                    }
                }
            },
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One client connection, until it closes or, after `shutdown`, its current request is done.
async fn connection<A, F>(
    stream: TcpStream,
    peer: SocketAddr,
    answer: A,
    shutdown: CancellationToken,
    head_timeout: Duration,
) where
    A: Fn(axum::http::Request<Body>, SocketAddr) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    if let Err(e) = stream.set_nodelay(true) {
        debug!(error = %e, "TCP_NODELAY not set");
    }
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        let answered = answer(request.map(Body::new), peer);
        async move { Ok::<_, Infallible>(answered.await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        served = conn.as_mut() => return finished(served),
        _ = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
    }
    finished(conn.await);
}

fn finished(served: Result<(), hyper::Error>) {
    if let Err(e) = served {
        debug!(error = %e, "connection ended with an error");
    }
}

/// An error from `accept`: one connection's (aborted or reset before it was taken) is passed
/// over; anything else (out of file descriptors, memory) is logged and waited out for a second,
/// as `axum::serve` does, rather than spinning.
async fn accept_failed(e: std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    warn!(error = %e, "accept failed; retrying in a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::gateway::discovery::About;
    use crate::gateway::{Paywall, Price, Route};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn gateway() -> (tempfile::TempDir, Gateway) {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::app::App::open_embedded(dir.path(), "seller", ManualClock::new(0))
            .await
            .unwrap();
        let paywall = Paywall::new(app.seller, vec![Route::new("/free", Price::Free)]);
        let about = About {
            name: "t".into(),
            description: "t".into(),
            base_url: None,
            network: "regtest".into(),
        };
        // Nothing listens on the upstream's port: only the gateway's own answers are read.
        let gateway = crate::gateway::app(paywall, "http://127.0.0.1:9", about, &[]).unwrap();
        (dir, gateway)
    }

    /// Write `request` on a new connection; everything the gateway answers until it closes.
    async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        let _ = s.read_to_end(&mut answer).await;
        String::from_utf8_lossy(&answer).into_owned()
    }

    /// A gateway served on a loopback port with `head_timeout`: its data dir, its address, what
    /// stops it, and its task.
    async fn started(
        head_timeout: Duration,
    ) -> (
        tempfile::TempDir,
        SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let (dir, app) = gateway().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(serve_gateway(listener, app, shutdown.clone(), head_timeout));
        (dir, addr, shutdown, server)
    }

    #[tokio::test]
    async fn a_head_never_finished_and_an_idle_connection_are_closed_in_time() {
        let head_timeout = Duration::from_millis(300);
        let (_dir, addr, shutdown, server) = started(head_timeout).await;
        // Everything the gateway sends on `conn` until it closes it, and when it did.
        let until_closed = |mut conn: TcpStream| async move {
            let start = std::time::Instant::now();
            let mut answer = Vec::new();
            tokio::time::timeout(Duration::from_secs(20), conn.read_to_end(&mut answer))
                .await
                .expect("the gateway closes the connection")
                .unwrap();
            (
                String::from_utf8_lossy(&answer).into_owned(),
                start.elapsed(),
            )
        };

        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET /llms.txt HTTP/1.1\r\nhost: x\r\n")
            .await
            .unwrap();
        let (answer, after) = until_closed(slow).await;
        assert!(answer.is_empty(), "{answer:?}");
        assert!(after >= head_timeout, "closed after {after:?}");

        // A kept-alive connection is served, then closed once idle for as long.
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET /llms.txt HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let (answer, after) = until_closed(idle).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
        assert!(after >= head_timeout, "closed after {after:?}");
        shutdown.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn http1_is_served_an_http2_preface_is_not_and_shutdown_closes_idle_connections() {
        let (_dir, addr, shutdown, server) = started(HEADER_READ_TIMEOUT).await;

        let health =
            b"GET /.well-known/l402/health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
        let answer = exchange(addr, health).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with(r#"{"ok":true}"#), "{answer}");
        let h2 = exchange(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        // An HTTP/2 server would answer with a SETTINGS frame (binary); this one refuses in
        // HTTP/1.1, or closes.
        assert!(h2.is_empty() || h2.starts_with("HTTP/1.1 4"), "{h2:?}");

        // An open keep-alive connection: shutdown closes it, stops accepting, and returns.
        let mut open = TcpStream::connect(addr).await.unwrap();
        open.write_all(b"GET /llms.txt HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        open.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), server)
            .await
            .expect("the server returns once its connections are closed")
            .unwrap();
        let mut rest = Vec::new();
        open.read_to_end(&mut rest).await.unwrap();
        let rest = String::from_utf8_lossy(&rest);
        assert!(
            rest.contains("Paid endpoints answer HTTP 402"),
            "answered in full: {rest}"
        );
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }
}
