//! The legacy MCP HTTP+SSE transport (protocol 2024-11-05), which rmcp no longer ships.
//!
//! A client opens `GET /sse`; the first event (`event: endpoint`) names the URL to POST its
//! JSON-RPC messages to (`/messages?sessionId=<id>`, under the prefix the router is nested at).
//! Every message from the server then arrives on that stream as `event: message`.
//!
//! Each SSE connection gets its own server, made by the factory and run by rmcp over a
//! `(Sink, Stream)` pair of channels. When the client goes away, the session is forgotten and
//! the server cancelled; when the server stops, the stream ends. Sessions count against a
//! `SessionCap` (beyond it `GET /sse` gets 503 and `Retry-After`), and one that receives no
//! message for the idle limit is closed.
//!
//! Authentication and Host/Origin checks are the caller's layers.

use std::{
    collections::HashMap,
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError},
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, NestedPath, Query, State, rejection::NestedPathRejection},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
    routing::{get, post},
};
use futures::{SinkExt, Stream, StreamExt, channel::mpsc};
use rand::RngCore;
use rmcp::{
    ServerHandler, ServiceExt,
    model::{ClientJsonRpcMessage, ServerJsonRpcMessage},
};
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

use super::jsonrpc;
use super::sessions::{LegacySlot, RETRY_AFTER_SECS, SessionCap, SessionLimits};

/// Path of the SSE stream.
const SSE_PATH: &str = "/sse";
/// Path clients POST their messages to.
const MESSAGES_PATH: &str = "/messages";
/// Largest accepted POST body.
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// How often an idle stream gets a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Messages buffered per direction before the sender waits.
const CHANNEL_CAPACITY: usize = 64;
/// How long a POST waits for room in a busy session's queue before giving up.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(30);

/// The legacy HTTP+SSE transport: `GET /sse` and `POST /messages`, with the default
/// [`SessionLimits`] of its own.
///
/// `factory` makes one server per SSE connection. The router needs no state; nest it (the
/// endpoint event honours the nesting prefix) or merge it, and put authentication and
/// Host/Origin checks on it as layers.
pub fn router<S, F>(factory: F) -> Router
where
    S: ServerHandler,
    F: Fn() -> S + Send + Sync + 'static,
{
    router_with(factory, SessionCap::new(SessionLimits::default(), None))
}

/// [`router`], its sessions counted against `cap` (shared with other transports) and closed
/// after `cap`'s idle limit.
pub(crate) fn router_with<S, F>(factory: F, cap: Arc<SessionCap>) -> Router
where
    S: ServerHandler,
    F: Fn() -> S + Send + Sync + 'static,
{
    let state = Arc::new(SseState {
        factory,
        sessions: Arc::new(Sessions::default()),
        cap,
    });
    Router::new()
        .route(SSE_PATH, get(open_stream::<S, F>))
        .route(
            MESSAGES_PATH,
            post(post_message::<S, F>).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .with_state(state)
}

/// What the handlers share: the server factory, the open sessions and the cap on them.
struct SseState<F> {
    factory: F,
    sessions: Arc<Sessions>,
    cap: Arc<SessionCap>,
}

/// One open session: the queue into its server, and a nudge for its idle watch.
#[derive(Clone)]
struct Session {
    sender: mpsc::Sender<ClientJsonRpcMessage>,
    activity: Arc<Notify>,
}

/// Open sessions: the id a client POSTs with -> that session.
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn insert(&self, id: String, session: Session) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, session);
    }

    fn get(&self, id: &str) -> Option<Session> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn remove(&self, id: &str) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
            .is_some()
    }
}

/// A fresh, unguessable session id (128 random bits, hex).
fn new_session_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The start of a session id, enough to follow one session in the logs without printing the
/// whole id (which lets anyone who has it post into the session).
fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// Returns when `activity` has not been nudged for `idle`.
async fn idle_for(activity: &Notify, idle: Duration) {
    while tokio::time::timeout(idle, activity.notified())
        .await
        .is_ok()
    {}
}

/// `GET /sse`: start a server for this connection and stream its messages.
async fn open_stream<S, F>(
    State(state): State<Arc<SseState<F>>>,
    nested: Result<NestedPath, NestedPathRejection>,
) -> Response
where
    S: ServerHandler,
    F: Fn() -> S + Send + Sync + 'static,
{
    let slot = match state.cap.admit().await {
        Ok(_gate) => state.cap.legacy_slot(),
        Err(full) => {
            warn!(
                open = full.open,
                "refused a new MCP SSE session: at the session cap"
            );
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                [(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from(RETRY_AFTER_SECS),
                )],
                full.to_string(),
            )
                .into_response();
        }
    };
    let idle = state.cap.limits().idle;
    let id = new_session_id();
    let prefix = nested
        .as_ref()
        .map(|p| p.as_str().trim_end_matches('/'))
        .unwrap_or("");
    let endpoint = format!("{prefix}{MESSAGES_PATH}?sessionId={id}");

    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(CHANNEL_CAPACITY);
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(CHANNEL_CAPACITY);
    let activity = Arc::new(Notify::new());
    state.sessions.insert(
        id.clone(),
        Session {
            sender: to_server,
            activity: activity.clone(),
        },
    );
    let ct = CancellationToken::new();

    let span = info_span!("mcp_sse_session", session = %short(&id));
    let service = (state.factory)();
    let sessions = state.sessions.clone();
    let task_ct = ct.clone();
    let task_id = id.clone();
    tokio::spawn(
        async move {
            // `serve` returns once `initialize` is answered, so it runs here, not in the
            // handler: the client needs the endpoint event before it can send `initialize`.
            let session = async {
                match service
                    .serve_with_ct((to_client, from_client), task_ct)
                    .await
                {
                    Ok(running) => match running.waiting().await {
                        Ok(reason) => debug!(?reason, "MCP SSE session ended"),
                        Err(error) => warn!(%error, "MCP SSE session task failed"),
                    },
                    Err(error) => info!(%error, "MCP SSE session ended before initialization"),
                }
            };
            // A session with no message for `idle` ends: dropping the server cancels it and
            // closes its side of the channels, which ends the stream.
            tokio::select! {
                () = session => {}
                () = idle_for(&activity, idle) => {
                    info!(idle_secs = idle.as_secs(), "closed an idle MCP SSE session");
                }
            }
            sessions.remove(&task_id);
            // Dropping the transport closed the server's side of the channel, which ends
            // the stream once the queued messages are out.
        }
        .instrument(span.clone()),
    );
    span.in_scope(|| debug!(prefix, "MCP SSE session opened"));

    let stream = SessionStream {
        endpoint: Some(endpoint),
        from_server,
        _guard: SessionGuard {
            id,
            sessions: state.sessions.clone(),
            ct,
            _slot: slot,
        },
    };
    let sse = Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE));
    // Ask reverse proxies (nginx) not to buffer the stream.
    (
        [(
            HeaderName::from_static("x-accel-buffering"),
            HeaderValue::from_static("no"),
        )],
        sse,
    )
        .into_response()
}

/// The events of one session: the endpoint first, then each message from the server.
struct SessionStream {
    endpoint: Option<String>,
    from_server: mpsc::Receiver<ServerJsonRpcMessage>,
    _guard: SessionGuard,
}

impl Stream for SessionStream {
    type Item = Result<Event, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(endpoint) = self.endpoint.take() {
            return Poll::Ready(Some(Ok(Event::default().event("endpoint").data(endpoint))));
        }
        loop {
            let Some(message) = std::task::ready!(self.from_server.poll_next_unpin(cx)) else {
                return Poll::Ready(None);
            };
            match serde_json::to_string(&message) {
                Ok(json) => {
                    return Poll::Ready(Some(Ok(Event::default().event("message").data(json))));
                }
                Err(error) => warn!(%error, "dropping an MCP message that does not serialize"),
            }
        }
    }
}

/// Lives as long as the SSE response: when the client disconnects (or the stream ends), the
/// session is forgotten and its server cancelled.
struct SessionGuard {
    id: String,
    sessions: Arc<Sessions>,
    ct: CancellationToken,
    /// The session's place under the cap, given back with the stream.
    _slot: LegacySlot,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.ct.cancel();
        if self.sessions.remove(&self.id) {
            debug!(session = %short(&self.id), "MCP SSE stream closed");
        }
    }
}

/// The query of `POST /messages`.
#[derive(Deserialize)]
struct PostQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// `POST /messages?sessionId=<id>`: hand one JSON-RPC message to that session's server. The
/// answer, if any, comes on the session's SSE stream.
async fn post_message<S, F>(
    State(state): State<Arc<SseState<F>>>,
    Query(query): Query<PostQuery>,
    body: Bytes,
) -> Response
where
    S: ServerHandler,
    F: Fn() -> S + Send + Sync + 'static,
{
    let Some(id) = query.session_id.filter(|id| !id.is_empty()) else {
        return (StatusCode::BAD_REQUEST, "Missing sessionId").into_response();
    };
    let Some(Session {
        mut sender,
        activity,
    }) = state.sessions.get(&id)
    else {
        return (StatusCode::NOT_FOUND, "Session not found").into_response();
    };
    activity.notify_one();
    // A body that is not a JSON-RPC message gets 400 and a JSON-RPC error (with the request's
    // id when it has one), never an echo of the body: it may hold a secret.
    let message: ClientJsonRpcMessage = match jsonrpc::check(&body, jsonrpc::Policy::Http) {
        jsonrpc::Checked::Message(message) => *message,
        jsonrpc::Checked::Answer(answer) => {
            debug!(session = %short(&id), code = %answer["error"]["code"], "rejected a POST that is not a JSON-RPC message");
            return (StatusCode::BAD_REQUEST, axum::Json(answer)).into_response();
        }
        jsonrpc::Checked::Ignore => {
            return (StatusCode::BAD_REQUEST, "Invalid JSON-RPC message").into_response();
        }
    };
    match tokio::time::timeout(FORWARD_TIMEOUT, sender.send(message)).await {
        Ok(Ok(())) => (StatusCode::ACCEPTED, "Accepted").into_response(),
        // The server stopped between the lookup and the send.
        Ok(Err(_)) => (StatusCode::NOT_FOUND, "Session not found").into_response(),
        Err(_) => {
            warn!(session = %short(&id), "MCP SSE session is not taking messages");
            (StatusCode::SERVICE_UNAVAILABLE, "Session busy").into_response()
        }
    }
}
