//! Discovery documents generated from the routes: `/.well-known/l402` (machine-readable),
//! `/.well-known/agent.json` (an agent card), `/llms.txt` (for language models) and
//! `/openapi.json` (OpenAPI 3.1 with the `Payment` scheme's `x-payment-info` per priced route).

use serde_json::{Value, json};

use super::paywall::{Price, Route};
use crate::budget::MSAT_PER_SAT;

/// What the gateway says about itself.
#[derive(Debug, Clone, Default)]
pub struct About {
    pub name: String,
    pub description: String,
    /// Public base URL, when known (else links are relative).
    pub base_url: Option<String>,
    pub network: String,
}

fn price_json(p: &Price) -> Value {
    match p {
        Price::Free => json!({ "kind": "free" }),
        Price::Fixed { msat } => {
            json!({ "kind": "fixed", "sats": msat / MSAT_PER_SAT, "msat": msat })
        }
        Price::Hook { .. } => {
            json!({ "kind": "dynamic", "note": "priced per request; the 402 challenge carries the price" })
        }
    }
}

/// `/.well-known/l402`
pub(crate) fn l402_document(about: &About, routes: &[Route]) -> Value {
    json!({
        "version": 1,
        "name": about.name,
        "description": about.description,
        "network": about.network,
        "schemes": ["L402", "LSAT"],
        "authorization": "Authorization: L402 <base64 macaroon>:<hex preimage>",
        "routes": routes.iter().map(|r| json!({
            "path": r.path,
            "price": price_json(&r.price),
            "service": r.service,
            "tier": r.tier,
            "capabilities": r.capabilities,
            "valid_for_secs": r.valid_for_secs,
            "max_uses": r.max_uses,
            "free_per_day": r.free_per_day,
            "description": r.description,
            "auth": r.auth.as_str(),
            "sessions": r.sessions,
        })).collect::<Vec<_>>(),
    })
}

/// The `Payment` offers of a route (`x-payment-info`): a charge, and a session when offered.
/// `amount` is whole sats as digits, `null` when priced per request.
fn payment_offers(r: &Route) -> Vec<Value> {
    let amount = match &r.price {
        Price::Fixed { msat } => Value::String(crate::mpp::price_sats(*msat).to_string()),
        _ => Value::Null,
    };
    let mut offers = vec![json!({
        "intent": "charge",
        "method": "lightning",
        "amount": amount,
        "currency": "sat",
        "description": r.description,
    })];
    if r.sessions {
        offers.push(json!({
            "intent": "session",
            "method": "lightning",
            "amount": amount,
            "currency": "sat",
            "description": r.description.clone().map(|d| format!("{d} (per request, from a deposit)")),
        }));
    }
    offers
}

/// `/openapi.json`: each priced route's operations declare a `402` response and, when the
/// route sells through `Payment`, its offers in `x-payment-info` (advisory: the 402 wins).
pub fn openapi(about: &About, routes: &[Route]) -> Value {
    let mut paths = serde_json::Map::new();
    for r in routes {
        let mut responses = serde_json::Map::new();
        responses.insert(
            "200".into(),
            json!({ "description": "the upstream's answer" }),
        );
        let mut op = serde_json::Map::new();
        op.insert(
            "summary".into(),
            json!(r.description.clone().unwrap_or_else(|| r.path.clone())),
        );
        if r.price != Price::Free {
            responses.insert(
                "402".into(),
                json!({ "description": "Payment Required: WWW-Authenticate carries the challenges (L402 and/or Payment)" }),
            );
            if r.auth.mpp() {
                let offers = payment_offers(r);
                let info = match <[Value; 1]>::try_from(offers) {
                    Ok([one]) => one,
                    Err(many) => json!({ "offers": many }),
                };
                op.insert("x-payment-info".into(), info);
            }
        }
        op.insert("responses".into(), Value::Object(responses));
        let op = Value::Object(op);
        paths.insert(r.path.clone(), json!({ "get": op, "post": op }));
    }
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": about.name,
            "description": about.description,
            "version": env!("CARGO_PKG_VERSION"),
        },
        "x-service-info": { "docs": { "llms": "/llms.txt" } },
        "paths": paths,
    });
    if let Some(base) = &about.base_url {
        doc["servers"] = json!([{ "url": base }]);
    }
    doc
}

/// `/.well-known/agent.json`
pub(crate) fn agent_card(about: &About, routes: &[Route]) -> Value {
    json!({
        "name": about.name,
        "description": about.description,
        "url": about.base_url,
        "version": env!("CARGO_PKG_VERSION"),
        "capabilities": { "payments": { "protocol": "L402", "network": about.network, "discovery": "/.well-known/l402" } },
        "skills": routes.iter().filter(|r| r.price != Price::Free).map(|r| json!({
            "id": r.service,
            "name": r.path,
            "description": r.description.clone().unwrap_or_else(|| format!("{} behind an L402 paywall", r.path)),
            "price": price_json(&r.price),
        })).collect::<Vec<_>>(),
    })
}

/// `/llms.txt`
pub fn llms_txt(about: &About, routes: &[Route]) -> String {
    let mut out = format!("# {}\n\n> {}\n\n", about.name, about.description);
    out.push_str("Paid endpoints answer HTTP 402 with an L402 challenge (WWW-Authenticate: L402 macaroon=\"...\", invoice=\"...\") and/or a Payment challenge (WWW-Authenticate: Payment ..., method=\"lightning\"). Pay the Lightning invoice, then repeat the request with `Authorization: L402 <macaroon>:<preimage>` or `Authorization: Payment <credential>`. An MCP wallet such as l402-mcp's fetch_paid does this for you. Machine-readable prices: /.well-known/l402 and /openapi.json\n\n## Endpoints\n\n");
    for r in routes {
        let price = match &r.price {
            Price::Free => "free".to_owned(),
            Price::Fixed { msat } => format!("{} sats", msat / MSAT_PER_SAT),
            Price::Hook { .. } => "priced per request".to_owned(),
        };
        let mut terms = Vec::new();
        if let Some(s) = r.valid_for_secs {
            terms.push(format!("token valid {s} s"));
        }
        if let Some(n) = r.max_uses {
            terms.push(format!("{n} requests per token"));
        }
        if r.free_per_day > 0 {
            terms.push(format!("{} free requests a day", r.free_per_day));
        }
        let terms = if terms.is_empty() {
            String::new()
        } else {
            format!(" ({})", terms.join(", "))
        };
        out.push_str(&format!(
            "- [{}]({}): {price}{terms}{}\n",
            r.path,
            r.path,
            r.description
                .as_ref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ));
    }
    out
}
