//! JSON-RPC at the edges, spoken by hand: bytes written to `l402-mcp serve`'s stdin and read
//! back line by line, and raw HTTP posts. An unparseable message is answered with a Parse
//! error (`id: null`), an invalid request with the id it carried, a malformed HTTP body with
//! 400 and a JSON-RPC error; the bearer scheme is case-insensitive.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::{free_port, http_when_up};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const BIN: &str = env!("CARGO_BIN_EXE_l402-mcp");
const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;

struct Stdio_ {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Stdio_ {
    async fn send(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next line the server writes, as JSON.
    async fn answer(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(10), self.stdout.next_line())
            .await
            .expect("an answer within 10 s")
            .unwrap()
            .expect("a line");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

async fn stdio_server(dir: &std::path::Path) -> Stdio_ {
    let mut child = tokio::process::Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdin = child.stdin.take().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut s = Stdio_ {
        _child: child,
        stdin,
        stdout,
    };
    s.send(INIT).await;
    assert_eq!(s.answer().await["id"], 1);
    s.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
        .await;
    s
}

fn assert_error(answer: &Value, code: i64, id: Value) {
    assert_eq!(answer["jsonrpc"], "2.0", "{answer}");
    assert_eq!(answer["error"]["code"], code, "{answer}");
    assert!(answer["error"]["message"].is_string(), "{answer}");
    let obj = answer.as_object().unwrap();
    assert!(
        obj.contains_key("id"),
        "an error answer must carry \"id\": {answer}"
    );
    assert_eq!(answer["id"], id, "{answer}");
}

#[tokio::test]
async fn stdio_answers_unparseable_and_invalid_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = stdio_server(dir.path()).await;

    s.send("this is not json").await;
    assert_error(&s.answer().await, -32700, Value::Null);
    s.send(r#"{"jsonrpc":"2.0","id":4,"method":"ping""#).await; // cut short
    assert_error(&s.answer().await, -32700, Value::Null);

    s.send(r#"{"jsonrpc":"2.0","id":9}"#).await;
    assert_error(&s.answer().await, -32600, json!(9));
    s.send(r#"{"id":"abc","method":"ping"}"#).await; // no "jsonrpc"
    assert_error(&s.answer().await, -32600, json!("abc"));
    s.send(r#"{"jsonrpc":"2.0","id":{"no":"objects"},"method":"ping"}"#)
        .await;
    assert_error(&s.answer().await, -32600, Value::Null);
    s.send("[]").await;
    assert_error(&s.answer().await, -32600, Value::Null);
    s.send("42").await;
    assert_error(&s.answer().await, -32600, Value::Null);

    // Notifications are never answered, even broken ones; the server carries on.
    s.send(r#"{"jsonrpc":"2.0","method":"notifications/whatever","params":5}"#)
        .await;
    s.send(r#"{"jsonrpc":"2.0","id":11,"method":"ping"}"#).await;
    let pong = s.answer().await;
    assert_eq!(
        (pong["id"].clone(), pong["result"].clone()),
        (json!(11), json!({})),
        "{pong}"
    );
}

const TOKEN: &str = "edge-t0ken";

#[tokio::test]
async fn http_answers_malformed_bodies_with_json_rpc_errors() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = tokio::process::Command::new(BIN)
        .args([
            "serve",
            "--http",
            &format!("127.0.0.1:{port}"),
            "--http-token",
            TOKEN,
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/mcp");
    let http = http_when_up(&url).await;
    let post = |auth: &str, body: &str| {
        http.post(&url)
            .header("Authorization", auth)
            .header("Accept", "application/json, text/event-stream")
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let bearer = format!("Bearer {TOKEN}");

    for (body, code, id) in [
        ("{not json", -32700, Value::Null),
        ("", -32700, Value::Null),
        (r#"{"jsonrpc":"2.0","id":5}"#, -32600, json!(5)),
        (r#"{"id":"x","method":"initialize"}"#, -32600, json!("x")),
        (r#"{"hello":"world"}"#, -32600, Value::Null),
    ] {
        let r = post(&bearer, body).await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(ct.starts_with("application/json"), "{body}: {ct}");
        let answer: Value = r.json().await.unwrap();
        assert_error(&answer, code, id);
    }

    // The scheme of a bearer token is case-insensitive (RFC 9110); the token is not.
    for auth in [
        format!("BEARER {TOKEN}"),
        format!("bearer {TOKEN}"),
        format!("Bearer  {TOKEN}"),
    ] {
        let r = post(&auth, INIT).await.unwrap();
        assert_eq!(r.status(), 200, "{auth}");
    }
    for auth in [
        format!("Bearer {}", TOKEN.to_uppercase()),
        format!("Basic {TOKEN}"),
        format!("Bearer{TOKEN}"),
    ] {
        let r = post(&auth, INIT).await.unwrap();
        assert_eq!(r.status(), 401, "{auth}");
    }
}
