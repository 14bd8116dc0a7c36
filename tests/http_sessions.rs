//! `serve --http` keeps a bounded number of MCP sessions: beyond `max_sessions` (both HTTP
//! transports together) a new session is refused with 503, Retry-After and a JSON-RPC error,
//! and a session idle for `session_idle_secs` is closed, which makes room again.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{free_port, http_when_up};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");

fn init(id: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"s","version":"1"}}})
}

struct Server {
    _child: tokio::process::Child,
    base: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let child = tokio::process::Command::new(BIN)
            .args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(dir)
            .envs(env.iter().copied())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = http_when_up(&format!("{base}/mcp")).await;
        Server {
            _child: child,
            base,
            http,
        }
    }

    async fn post(&self, body: &Value, session: Option<&str>) -> reqwest::Response {
        let mut r = self
            .http
            .post(format!("{}/mcp", self.base))
            .header("Accept", "application/json, text/event-stream")
            .json(body);
        if let Some(s) = session {
            r = r
                .header("Mcp-Session-Id", s)
                .header("Mcp-Protocol-Version", "2025-06-18");
        }
        r.send().await.unwrap()
    }

    /// A new streamable session: its id.
    async fn open(&self, id: u64) -> Result<String, reqwest::Response> {
        let r = self.post(&init(id), None).await;
        if r.status() != 200 {
            return Err(r);
        }
        let session = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("Mcp-Session-Id")
            .to_owned();
        let _ = r.bytes().await;
        let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
        assert_eq!(self.post(&note, Some(&session)).await.status(), 202);
        Ok(session)
    }

    async fn ping(&self, session: &str) -> reqwest::StatusCode {
        let r = self
            .post(
                &json!({"jsonrpc":"2.0","id":99,"method":"ping"}),
                Some(session),
            )
            .await;
        let status = r.status();
        let _ = r.bytes().await;
        status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_capped_and_idle_ones_expire() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("L402_MCP_MAX_SESSIONS", "2"),
            ("L402_MCP_SESSION_IDLE_SECS", "2"),
        ],
    )
    .await;

    let first = server.open(1).await.expect("first session");
    let second = server.open(2).await.expect("second session");
    assert_eq!(server.ping(&first).await, 200);

    // The cap: a third session is refused, clearly.
    let refused = server
        .open(3)
        .await
        .expect_err("a third session is over the cap");
    assert_eq!(refused.status(), 503);
    assert!(
        refused.headers().contains_key("retry-after"),
        "{:?}",
        refused.headers()
    );
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["id"], 3, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_sessions"), "{body}");
    // The legacy SSE transport counts against the same cap.
    let sse = server
        .http
        .get(format!("{}/sse", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(sse.status(), 503);
    assert!(sse.headers().contains_key("retry-after"));
    // Sessions in use are not disturbed by the refusals.
    assert_eq!(server.ping(&second).await, 200);

    // Idle sessions expire (2 s here), which makes room. Every request is activity, so the
    // sessions are looked at less often than that.
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(3)).await;
        if server.ping(&first).await == 404 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "an idle session did not expire"
        );
    }
    let again = server
        .open(4)
        .await
        .expect("room once idle sessions closed");
    assert_eq!(server.ping(&again).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_legacy_sse_session_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("L402_MCP_MAX_SESSIONS", "1"),
            ("L402_MCP_SESSION_IDLE_SECS", "1"),
        ],
    )
    .await;
    let mut stream = server
        .http
        .get(format!("{}/sse", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    // The only slot is taken.
    assert!(server.open(1).await.is_err());
    // Nothing is posted: the server ends the stream within a few seconds.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the idle SSE session was not closed");
    // And its slot is free again.
    let started = Instant::now();
    while server.open(2).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the slot was not freed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
