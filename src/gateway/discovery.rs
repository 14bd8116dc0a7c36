//! Discovery documents generated from the routes: `/.well-known/l402` (machine-readable),
//! `/.well-known/agent.json` (an agent card) and `/llms.txt` (for language models).

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
        })).collect::<Vec<_>>(),
    })
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
    out.push_str("Paid endpoints answer HTTP 402 with an L402 challenge (WWW-Authenticate: L402 macaroon=\"...\", invoice=\"...\"). Pay the Lightning invoice, then repeat the request with `Authorization: L402 <macaroon>:<preimage>`. An MCP wallet such as l402-mcp's fetch_paid does this for you. Machine-readable prices: /.well-known/l402\n\n## Endpoints\n\n");
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
