//! MCP Apps (extension `io.modelcontextprotocol/ui`): the approval card and the wallet view.
//!
//! - `ui://l402-mcp/approval.html`, linked from `fetch_paid` and `pay_invoice`: shows a held
//!   payment from the result's `_meta` (for a host that declares the extension, the one-time
//!   secret is there too) with Approve / Deny, which call `approve_payment` with the secret;
//!   other results it shows as a short receipt. The secret, not the tool's `["app"]`
//!   visibility (which only hosts enforce), is what stops the model.
//! - `ui://l402-mcp/wallet.html`, linked from `wallet_balance`: the dashboard's HTML, made by
//!   the server, read-only.
//!
//! Hosts without Apps ignore `_meta.ui`; every tool still returns its full result.

use rmcp::model::{
    ListResourcesResult, MetaObject, ReadResourceResult, Resource, ResourceContents,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde_json::json;
use tracing::warn;

use super::L402Server;
use crate::ops::dashboard::{self, PaymentsShown};
use crate::web::render::{self, Mode};

/// The MCP Apps extension.
pub(crate) const UI_EXTENSION: &str = "io.modelcontextprotocol/ui";

/// Whether the client declares the MCP Apps extension for this request.
pub(crate) fn renders_apps(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .and_then(|c| c.extensions)
        .is_some_and(|x| x.contains_key(UI_EXTENSION))
}

impl L402Server {
    /// The wallet view's HTML (the dashboard, read-only), as a result's `_meta`.
    pub(crate) async fn wallet_view(&self) -> Option<MetaObject> {
        let shown = PaymentsShown {
            limit: 20,
            ..PaymentsShown::default()
        };
        match dashboard::dashboard(self.app(), &shown).await {
            Ok(d) => {
                let html = format!(
                    "<style>{}</style>{}",
                    render::STYLE,
                    render::dashboard(&d, &Mode::App)
                );
                let mut m = MetaObject::new();
                m.insert(HTML_META.into(), json!(html));
                Some(m)
            }
            Err(f) => {
                warn!(error = %f, "no wallet view");
                None
            }
        }
    }
}

pub(crate) const MIME: &str = "text/html;profile=mcp-app";
pub(crate) const APPROVAL_URI: &str = "ui://l402-mcp/approval.html";
pub(crate) const WALLET_URI: &str = "ui://l402-mcp/wallet.html";
/// Where the wallet view finds its HTML in `wallet_balance`'s result `_meta`.
pub(crate) const HTML_META: &str = "io.l402-mcp/html";

const APPROVAL_HTML: &str = include_str!("approval.html");
const WALLET_HTML: &str = include_str!("wallet.html");

/// `_meta` of a tool shown with the view `uri`, callable by the model and the view (`["model",
/// "app"]`) or by the view only (`["app"]`).
pub(crate) fn tool_meta(uri: &str, app_only: bool) -> MetaObject {
    let visibility = if app_only {
        json!(["app"])
    } else {
        json!(["model", "app"])
    };
    let mut m = MetaObject::new();
    m.insert(
        "ui".into(),
        json!({ "resourceUri": uri, "visibility": visibility }),
    );
    m
}

pub(crate) fn approval_tool_meta() -> MetaObject {
    tool_meta(APPROVAL_URI, false)
}

pub(crate) fn approve_payment_meta() -> MetaObject {
    tool_meta(APPROVAL_URI, true)
}

pub(crate) fn wallet_tool_meta() -> MetaObject {
    tool_meta(WALLET_URI, false)
}

/// A view's own `_meta`: no network at all (no `connectDomains`), a border.
fn view_meta() -> MetaObject {
    let mut m = MetaObject::new();
    m.insert(
        "ui".into(),
        json!({ "csp": { "connectDomains": [], "resourceDomains": [] }, "prefersBorder": true }),
    );
    m
}

const VIEWS: [(&str, &str, &str); 2] = [
    (APPROVAL_URI, "l402-mcp approval card", APPROVAL_HTML),
    (WALLET_URI, "l402-mcp wallet", WALLET_HTML),
];

pub(crate) fn list() -> ListResourcesResult {
    ListResourcesResult::with_all_items(
        VIEWS
            .iter()
            .map(|(uri, name, _)| {
                Resource::new(*uri, *name)
                    .with_mime_type(MIME)
                    .with_meta(view_meta())
            })
            .collect(),
    )
}

pub(crate) fn read(uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let (_, _, html) = VIEWS
        .iter()
        .find(|(u, _, _)| *u == uri)
        .ok_or_else(|| ErrorData::resource_not_found(format!("no resource {uri}"), None))?;
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(*html, uri)
            .with_mime_type(MIME)
            .with_meta(view_meta()),
    ]))
}
