//! What a JSON-RPC server owes a client that sends something it cannot read (JSON-RPC 2.0,
//! section 5): text that is not JSON gets a Parse error (-32700) with `"id": null`; JSON that is
//! not a valid request gets an Invalid Request error (-32600) with the request's `id` when it
//! has a usable one (a string or a number), else `null`. Notifications are never answered,
//! however broken, nor are responses (over HTTP, [`Policy::Http`], they are refused with an
//! error that has no usable id, as the MCP transport asks).
//!
//! rmcp stays silent on unparseable input over stdio, and answers invalid requests without
//! their id; over HTTP it answers a malformed body with 415 and text. The transports here
//! check each message with [`check`] before rmcp sees it.

use rmcp::model::ClientJsonRpcMessage;
use serde_json::{Value, json};

/// JSON-RPC's Parse error.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC's Invalid Request.
pub const INVALID_REQUEST: i64 = -32600;

/// Whether a message that cannot be read deserves an answer even when it looks like a
/// notification or a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// A stream (stdio): notifications and responses are never answered.
    Stream,
    /// One message per HTTP request: every refusal gets a status and an error body.
    Http,
}

/// The verdict on one incoming message.
#[derive(Debug)]
pub enum Checked {
    /// A message rmcp can take.
    Message(Box<ClientJsonRpcMessage>),
    /// Not readable: send this error answer (a JSON-RPC error object, serialized).
    Answer(Value),
    /// Not readable and owed no answer (a notification or a response).
    Ignore,
}

/// Read one JSON-RPC message (a line of stdio, an HTTP body).
pub fn check(bytes: &[u8], policy: Policy) -> Checked {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let parse_error = match serde_json::from_slice::<ClientJsonRpcMessage>(bytes) {
        Ok(message) => return Checked::Message(Box::new(message)),
        Err(e) => e,
    };
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            // Where it broke, never the text itself (it may hold a secret).
            let message = if e.is_eof() {
                "Parse error: the message ends before its JSON does".to_owned()
            } else {
                format!(
                    "Parse error: not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                )
            };
            return Checked::Answer(error(Value::Null, PARSE_ERROR, &message));
        }
    };
    let Some(object) = value.as_object() else {
        return Checked::Answer(error(
            Value::Null,
            INVALID_REQUEST,
            "Invalid Request: a message is one JSON-RPC 2.0 object (batches are not supported)",
        ));
    };
    let id = object.get("id");
    let is_notification = id.is_none() && object.contains_key("method");
    let is_response = !object.contains_key("method")
        && (object.contains_key("result") || object.contains_key("error"));
    if policy == Policy::Stream && (is_notification || is_response) {
        return Checked::Ignore;
    }
    let id = match id {
        Some(v @ (Value::String(_) | Value::Number(_))) => v.clone(),
        _ => Value::Null,
    };
    let why = if object.get("jsonrpc") != Some(&json!("2.0")) {
        "\"jsonrpc\" must be \"2.0\"".to_owned()
    } else if !object.contains_key("method") && !is_response {
        "a request needs a \"method\"".to_owned()
    } else {
        // serde's own words, without the value it quotes: at its first quote, if any.
        let text = parse_error.to_string();
        let plain = text.split(['"', '`']).next().unwrap_or_default().trim();
        format!("not a valid MCP message ({plain})")
    };
    Checked::Answer(error(
        id,
        INVALID_REQUEST,
        &format!("Invalid Request: {why}"),
    ))
}

/// A JSON-RPC error answer.
pub fn error(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(s: &str, policy: Policy) -> Option<Value> {
        match check(s.as_bytes(), policy) {
            Checked::Answer(v) => Some(v),
            Checked::Message(_) => Some(json!("message")),
            Checked::Ignore => None,
        }
    }

    #[test]
    fn verdicts() {
        let ping = r#"{"jsonrpc":"2.0","id":3,"method":"ping"}"#;
        assert_eq!(answer(ping, Policy::Stream), Some(json!("message")));
        let bom = format!("\u{feff}{ping}");
        assert_eq!(answer(&bom, Policy::Stream), Some(json!("message")));
        let parse = answer("{nope", Policy::Stream).unwrap_or_default();
        assert_eq!(
            (parse["id"].clone(), parse["error"]["code"].clone()),
            (Value::Null, json!(-32700))
        );
        assert!(parse.as_object().is_some_and(|o| o.contains_key("id")));
        let invalid = answer(r#"{"jsonrpc":"2.0","id":"k"}"#, Policy::Stream).unwrap_or_default();
        assert_eq!(
            (invalid["id"].clone(), invalid["error"]["code"].clone()),
            (json!("k"), json!(-32600))
        );
        let v1 = answer(
            r#"{"jsonrpc":"1.0","id":2,"method":"ping"}"#,
            Policy::Stream,
        )
        .unwrap_or_default();
        assert_eq!(v1["id"], 2);
        let note = r#"{"jsonrpc":"2.0","method":"notifications/x","params":1}"#;
        assert_eq!(answer(note, Policy::Stream), None);
        assert_eq!(
            answer(note, Policy::Http).unwrap_or_default()["error"]["code"],
            -32600
        );
        let resp = r#"{"jsonrpc":"2.0","id":1,"result":5,"extra":"junk","method2":0}"#;
        assert!(
            answer(resp, Policy::Stream).is_none()
                || answer(resp, Policy::Stream) == Some(json!("message"))
        );
        // The offending text never comes back.
        let secret = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":"L402 s3cret"}"#;
        let a = answer(secret, Policy::Stream).unwrap_or_default();
        assert!(!a.to_string().contains("s3cret"), "{a}");
    }
}
