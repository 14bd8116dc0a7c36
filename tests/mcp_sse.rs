//! The legacy HTTP+SSE transport, spoken by hand over HTTP as a 2024-11-05 client would.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use l402_mcp::mcp::sse;
use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize, JsonSchema)]
struct EchoRequest {
    /// What to say back.
    text: String,
}

#[derive(Clone)]
struct EchoServer {
    tool_router: ToolRouter<Self>,
}

#[tool_router(router = tool_router)]
impl EchoServer {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }

    /// Says the text back.
    #[tool(name = "echo", description = "Say the text back")]
    async fn echo(&self, params: Parameters<EchoRequest>) -> String {
        format!("echo: {}", params.0.text)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for EchoServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

/// Serves `app` on an ephemeral port; returns its base URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    format!("http://{addr}")
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// One parsed server-sent event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    data: String,
}

/// A minimal SSE reader over a streaming response.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next event (comments skipped), or `None` when the stream ends.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = Vec::new();
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event:") {
                        event = value.trim_start().to_owned();
                    } else if let Some(value) = line.strip_prefix("data:") {
                        data.push(value.strip_prefix(' ').unwrap_or(value).to_owned());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some(SseEvent {
                    event,
                    data: data.join("\n"),
                });
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.response.chunk())
                .await
                .expect("SSE event within 10 s")
                .expect("SSE body")?;
            self.buffer
                .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
        }
    }

    /// The next `message` event, parsed as JSON.
    async fn message(&mut self) -> Value {
        let event = self.next().await.expect("an event");
        assert_eq!(event.event, "message", "{event:?}");
        serde_json::from_str(&event.data).expect("JSON data")
    }
}

/// Opens `GET {base}/sse`; returns the reader and the endpoint event's data.
async fn open(http: &reqwest::Client, base: &str) -> (SseReader, String) {
    let response = http
        .get(format!("{base}/sse"))
        .send()
        .await
        .expect("GET /sse");
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().expect("ascii");
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let mut reader = SseReader::new(response);
    let endpoint = reader.next().await.expect("endpoint event");
    assert_eq!(endpoint.event, "endpoint");
    (reader, endpoint.data)
}

async fn post(http: &reqwest::Client, url: &str, body: &Value) -> reqwest::StatusCode {
    http.post(url)
        .json(body)
        .send()
        .await
        .expect("POST")
        .status()
}

#[tokio::test]
async fn legacy_sse_client_lists_and_calls_tools() {
    let http = client();
    let base = serve(sse::router(EchoServer::new)).await;
    let (mut events, endpoint) = open(&http, &base).await;
    let session = endpoint
        .strip_prefix("/messages?sessionId=")
        .expect("endpoint path");
    assert!(session.len() >= 32, "{endpoint}");
    let url = format!("{base}{endpoint}");

    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {
            "protocolVersion": "2024-11-05",
            "capabilities": {},
            "clientInfo": {"name": "legacy-test", "version": "0.0.1"}
        }
    });
    let response = http
        .post(&url)
        .json(&initialize)
        .send()
        .await
        .expect("POST initialize");
    assert_eq!(response.status(), 202);
    assert_eq!(response.text().await.expect("body"), "Accepted");
    let init = events.message().await;
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["protocolVersion"], "2024-11-05");
    assert!(
        init["result"]["capabilities"]["tools"].is_object(),
        "{init}"
    );

    let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&http, &url, &initialized).await, 202);

    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}});
    assert_eq!(post(&http, &url, &list).await, 202);
    let tools = events.message().await;
    assert_eq!(tools["id"], 2);
    assert_eq!(tools["result"]["tools"][0]["name"], "echo", "{tools}");

    let call = json!({
        "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "hi"}}
    });
    assert_eq!(post(&http, &url, &call).await, 202);
    let result = events.message().await;
    assert_eq!(result["id"], 3);
    assert_eq!(
        result["result"]["content"][0]["text"], "echo: hi",
        "{result}"
    );
    assert_ne!(result["result"]["isError"], true);

    // Closing the stream ends the session.
    drop(events);
    let mut gone = false;
    for _ in 0..50 {
        if post(&http, &url, &list).await == 404 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "session still open after the SSE stream closed");
}

#[tokio::test]
async fn bad_posts_are_refused() {
    let http = client();
    let base = serve(sse::router(EchoServer::new)).await;
    let (_events, endpoint) = open(&http, &base).await;
    let url = format!("{base}{endpoint}");
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});

    assert_eq!(
        post(
            &http,
            &format!("{base}/messages?sessionId=nosuchsession"),
            &ping
        )
        .await,
        404
    );
    assert_eq!(post(&http, &format!("{base}/messages"), &ping).await, 400);
    let bad_json = http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(bad_json.status(), 400);
    let answer: Value = bad_json.json().await.expect("a JSON-RPC error");
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert_eq!(answer["id"], Value::Null);
    let not_jsonrpc = post(&http, &url, &json!({"hello": "world"})).await;
    assert_eq!(not_jsonrpc, 400);
    let no_method = http
        .post(&url)
        .json(&json!({"jsonrpc": "2.0", "id": 31}))
        .send()
        .await
        .expect("POST");
    assert_eq!(no_method.status(), 400);
    let answer: Value = no_method.json().await.expect("a JSON-RPC error");
    assert_eq!(
        (answer["error"]["code"].clone(), answer["id"].clone()),
        (json!(-32600), json!(31))
    );
    let too_big = http
        .post(&url)
        .body(vec![b' '; 5 * 1024 * 1024])
        .send()
        .await
        .expect("POST");
    assert_eq!(too_big.status(), 413);
}

#[tokio::test]
async fn endpoint_honours_the_nesting_prefix() {
    let http = client();
    let base = serve(axum::Router::new().nest("/legacy", sse::router(EchoServer::new))).await;
    let (mut events, endpoint) = open(&http, &format!("{base}/legacy")).await;
    assert!(
        endpoint.starts_with("/legacy/messages?sessionId="),
        "{endpoint}"
    );

    let ping = json!({"jsonrpc": "2.0", "id": 7, "method": "ping"});
    assert_eq!(post(&http, &format!("{base}{endpoint}"), &ping).await, 202);
    let pong = events.message().await;
    assert_eq!(pong["id"], 7, "{pong}");
}

#[tokio::test]
async fn stream_ends_when_the_server_stops() {
    let http = client();
    let base = serve(sse::router(EchoServer::new)).await;
    let (mut events, endpoint) = open(&http, &base).await;
    // A notification before `initialize` is a protocol error: rmcp ends the session.
    let early = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(post(&http, &format!("{base}{endpoint}"), &early).await, 202);
    assert!(events.next().await.is_none(), "stream should end");
}
