//! The README's word on what each MCP tool returns, checked against the server: the "Tool
//! results" table must list exactly the fields of each tool's `outputSchema`, real results carry
//! them, and a sentence like "`wallet_balance` shows `returns_preimages`" names a real field. A
//! field renamed (or dropped) on either side fails here.
// A failed step in a test or benchmark is a failed run: unwrapping is fine here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;

use common::agents::{call, ok, spawn_agent};
use common::{code_spans, readme};
use serde_json::{Map, Value, json};

/// The rows of the first table under the heading `heading`: cells of each row.
fn table_under(text: &str, heading: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') {
            if inside && !rows.is_empty() {
                break;
            }
            inside = t.trim_start_matches('#').trim() == heading;
            continue;
        }
        if !inside {
            continue;
        }
        if t.starts_with('|') {
            let cells: Vec<String> = t
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect();
            if !cells[0].starts_with("---") && cells[0] != "tool" {
                rows.push(cells);
            }
        } else if !rows.is_empty() {
            break;
        }
    }
    rows
}

/// Tool -> the fields the README says it returns.
fn documented_fields(text: &str) -> BTreeMap<String, BTreeSet<String>> {
    let rows = table_under(text, "Tool results");
    assert!(!rows.is_empty(), "no \"Tool results\" table in README.md");
    rows.iter()
        .map(|cells| {
            let tool = code_spans(&cells[0]).into_iter().next().expect("tool name");
            let fields = code_spans(cells.get(1).map(String::as_str).unwrap_or_default());
            (tool, fields.into_iter().collect())
        })
        .collect()
}

/// `schema` with `$ref`s into `defs` and nullable `anyOf`s resolved.
fn resolve<'a>(schema: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return resolve(&defs[name], defs);
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(alts) = schema.get(key).and_then(Value::as_array) {
            let real: Vec<&Value> = alts.iter().filter(|a| a["type"] != "null").collect();
            if let [one] = real[..] {
                return resolve(one, defs);
            }
        }
    }
    schema
}

/// Every leaf field of an output schema, as `a`, `a.b` or `list[].c`.
fn schema_fields(schema: &Value) -> BTreeSet<String> {
    fn walk(s: &Value, defs: &Map<String, Value>, prefix: &str, out: &mut BTreeSet<String>) {
        let s = resolve(s, defs);
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                walk(sub, defs, &format!("{prefix}{name}."), out);
            }
            return;
        }
        let is_array = s["type"] == "array"
            || s["type"]
                .as_array()
                .is_some_and(|t| t.contains(&json!("array")));
        if is_array {
            let items = resolve(&s["items"], defs);
            if items.get("properties").is_some() {
                let list = prefix.trim_end_matches('.');
                walk(items, defs, &format!("{list}[]."), out);
                return;
            }
        }
        out.insert(prefix.trim_end_matches('.').to_owned());
    }
    let empty = Map::new();
    let defs = schema
        .get("$defs")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut out = BTreeSet::new();
    walk(schema, defs, "", &mut out);
    out
}

/// Whether `value` has the field at `path` (null counts: the field is there).
fn has_field(value: &Value, path: &str) -> bool {
    let mut cur = vec![value];
    for part in path.split('.') {
        let (name, list) = match part.strip_suffix("[]") {
            Some(n) => (n, true),
            None => (part, false),
        };
        let mut next = Vec::new();
        for v in cur {
            let Some(f) = v.as_object().and_then(|o| o.get(name)) else {
                return false;
            };
            if list {
                next.extend(f.as_array().into_iter().flatten());
            } else {
                next.push(f);
            }
        }
        if next.is_empty() {
            return true; // an empty list: nothing to check inside it
        }
        cur = next;
    }
    true
}

/// "`<tool>` shows `<field>`" (or `<field>: value`) anywhere in the README.
fn claims_in_prose(text: &str, tools: &BTreeSet<String>) -> Vec<(String, String)> {
    let spans: Vec<(usize, &str)> = text
        .split('`')
        .enumerate()
        .filter(|(n, _)| n % 2 == 1)
        .collect();
    let pieces: Vec<&str> = text.split('`').collect();
    let mut claims = Vec::new();
    for (i, tool) in &spans {
        let (Some(between), Some(field)) = (pieces.get(i + 1), pieces.get(i + 2)) else {
            continue;
        };
        let between = between.trim();
        if tools.contains(*tool) && ["shows", "returns", "says"].contains(&between) {
            let field = field.split(':').next().unwrap_or(field).trim();
            claims.push(((*tool).to_owned(), field.to_owned()));
        }
    }
    claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_names_the_fields_the_tools_return() {
    let text = readme();
    let documented = documented_fields(&text);
    let dir = tempfile::tempdir().unwrap();
    let agent = spawn_agent(dir.path(), "default", &[], Stdio::null()).await;
    let tools = agent.list_all_tools().await.unwrap();

    let listed: BTreeSet<String> = tools.iter().map(|t| t.name.to_string()).collect();
    let in_readme: BTreeSet<String> = documented.keys().cloned().collect();
    assert_eq!(
        listed, in_readme,
        "tools served vs the README's Tool results table"
    );
    let in_tool_table: BTreeSet<String> = table_under(&text, "MCP tools")
        .iter()
        .filter_map(|cells| code_spans(&cells[0]).into_iter().next())
        .filter_map(|s| s.split_whitespace().next().map(str::to_owned))
        .collect();
    assert_eq!(
        listed, in_tool_table,
        "tools served vs the README's MCP tools table"
    );

    let mut schemas = BTreeMap::new();
    for t in &tools {
        let schema = Value::Object(
            t.output_schema
                .as_ref()
                .map(|s| (**s).clone())
                .unwrap_or_default(),
        );
        let fields = schema_fields(&schema);
        let doc = &documented[t.name.as_ref()];
        let undocumented: Vec<_> = fields.difference(doc).collect();
        let missing: Vec<_> = doc.difference(&fields).collect();
        assert!(
            undocumented.is_empty() && missing.is_empty(),
            "{}: the README lists {missing:?} which the outputSchema does not have, and not {undocumented:?} which it has",
            t.name
        );
        schemas.insert(t.name.to_string(), fields);
    }

    for (tool, field) in claims_in_prose(&text, &listed) {
        assert!(
            documented[&tool].contains(&field),
            "the README says `{tool}` shows `{field}`, which it does not return"
        );
    }

    // Real results carry the fields.
    let inv = ok(&call(&agent, "create_invoice", json!({ "amount_sats": 3 })).await);
    let results = [
        ("create_invoice", inv.clone()),
        (
            "wallet_balance",
            ok(&call(&agent, "wallet_balance", json!({})).await),
        ),
        (
            "decode_invoice",
            ok(&call(&agent, "decode_invoice", json!({ "bolt11": inv["bolt11"] })).await),
        ),
        (
            "list_payments",
            ok(&call(&agent, "list_payments", json!({})).await),
        ),
    ];
    for (tool, result) in results {
        for field in &documented[tool] {
            assert!(
                has_field(&result, field),
                "{tool} result has no {field}: {result}"
            );
        }
    }
}
