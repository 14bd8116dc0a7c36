//! The MCP server: one wallet's tools ([`super::tools`], each a call into [`crate::ops`]),
//! what the server says about itself, and how a failure reaches the client.
//!
//! Business failures (over budget, price above the cap, wallet error, bad invoice) are tool
//! results with `isError: true` and a message that starts with a stable code; JSON-RPC errors
//! are left to protocol misuse (unknown tool, arguments that do not match the schema).

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, Implementation, ServerCapabilities,
    ServerConfig,
};
use rmcp::{ErrorData, ServerHandler, tool_handler};

use crate::app::App;
use crate::fetch::{FetchError, Fetcher};
use crate::ops::Failure;

const INSTRUCTIONS: &str = "A Lightning wallet that speaks L402 and the Payment scheme (MPP). To buy: call fetch_paid instead of a plain HTTP fetch; \
it pays an L402 or Payment challenge (HTTP 402) within the per-call cap (max_price_sats) and the wallet's budget, then retries with \
the credential, and reuses L402 credentials and Payment sessions later (close_sessions gets a session's unspent deposit back). \
call_paid_tool calls a priced tool of another MCP server the same way. To sell: create_l402_challenge returns the 402 headers to send; verify_l402_payment \
checks the Authorization header a buyer sends back. wallet_balance shows funds and what the budget still allows. \
Amounts are in sats. When wallet_balance says demo_funds, the sats are test sats, not real bitcoin. \
A payment the wallet's approval policy holds waits for a person: the client may ask them itself; otherwise the result is \
approval_required with the approval's id and where the person approves (a page, or l402-mcp approve ID in a terminal). \
Tell the user; you cannot approve payments yourself. Once approved, make the same call again: it is paid once.";

/// The tools, over one opened wallet.
#[derive(Clone)]
pub struct L402Server {
    pub(crate) app: Arc<App>,
    fetcher: Arc<Fetcher>,
    tool_router: ToolRouter<Self>,
    /// Seals the `requestState` of an approval asked through `input_required`.
    pub(crate) request_state: Arc<tokio::sync::OnceCell<rmcp::model::RequestStateCodec>>,
    /// The approval pages this process serves on loopback (from the first held payment).
    pub(crate) pages: super::approval::Pages,
    /// This session's `logging/setLevel` (2025-11-25), and whether its events are forwarded.
    #[allow(deprecated)]
    pub(crate) log_level: Arc<std::sync::Mutex<Option<rmcp::model::LoggingLevel>>>,
    pub(crate) forwarding: Arc<std::sync::OnceLock<()>>,
    /// Numbers the calls whose events are reported as their progress.
    pub(crate) calls: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for L402Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L402Server")
            .field("wallet", &self.app.wallet_name)
            .finish_non_exhaustive()
    }
}

impl IntoCallToolResult for Failure {
    fn into_call_tool_result(self) -> Result<CallToolResponse, ErrorData> {
        Ok(CallToolResult::error(vec![ContentBlock::text(self.to_string())]).into())
    }
}

impl L402Server {
    /// Tools over an opened wallet; `fetch_paid` reaches what `fetch` allows.
    pub fn new(app: Arc<App>, fetch: crate::config::FetchConfig) -> Result<L402Server, FetchError> {
        let mut fetcher = Fetcher::new(
            app.payer.clone(),
            app.storage.tokens(),
            app.clock.clone(),
            fetch.policy(),
        )?;
        if let Some(proxy) = &fetch.proxy {
            fetcher = fetcher.via_proxy(proxy.expose())?;
        }
        fetcher = fetcher
            .with_sessions(app.storage.buyer_sessions())
            .prefer(fetch.prefer_scheme.unwrap_or_default());
        let mut tool_router =
            Self::buy_tools() + Self::sell_tools() + Self::wallet_tools() + Self::approve_tools();
        for route in tool_router.map.values_mut() {
            tidy_tool_schemas(&mut route.attr);
        }
        Ok(L402Server {
            app,
            fetcher: Arc::new(fetcher),
            tool_router,
            request_state: Arc::default(),
            pages: Arc::default(),
            log_level: Arc::default(),
            forwarding: Arc::default(),
            calls: Arc::default(),
        })
    }

    /// The server for one more session of an HTTP transport: the same wallet, tools and
    /// approval pages, a log level of its own.
    pub fn for_session(&self) -> L402Server {
        L402Server {
            log_level: Arc::default(),
            forwarding: Arc::default(),
            ..self.clone()
        }
    }

    pub(crate) fn app(&self) -> &App {
        &self.app
    }

    pub(crate) fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    /// Close idle Payment sessions until `shutdown`, then the open ones (see
    /// [`Fetcher::tend_sessions`]). Await it before the process exits.
    pub fn tend_sessions(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let fetcher = self.fetcher.clone();
        tokio::spawn(async move { fetcher.tend_sessions(shutdown).await })
    }
}

/// schemars marks integers with formats such as `uint64` that are not JSON Schema formats; some
/// clients print a warning for each. The type and `minimum` already say it all.
fn tidy_tool_schemas(tool: &mut rmcp::model::Tool) {
    fn tidy(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map
                    .get("format")
                    .and_then(|f| f.as_str())
                    .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
                {
                    map.remove("format");
                }
                map.values_mut().for_each(tidy);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(tidy),
            _ => {}
        }
    }
    let mut input = serde_json::Value::Object((*tool.input_schema).clone());
    tidy(&mut input);
    if let serde_json::Value::Object(map) = input {
        tool.input_schema = Arc::new(map);
    }
    if let Some(out) = &tool.output_schema {
        let mut output = serde_json::Value::Object((**out).clone());
        tidy(&mut output);
        if let serde_json::Value::Object(map) = output {
            tool.output_schema = Some(Arc::new(map));
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for L402Server {
    // Logging is deprecated by SEP-2577 (2026-07-28) but older clients and the conformance suite
    // still use it: keep answering `logging/setLevel`.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        let mut extensions = std::collections::BTreeMap::new();
        let mut ui = rmcp::model::JsonObject::new();
        ui.insert("mimeTypes".into(), serde_json::json!([super::apps::MIME]));
        extensions.insert(super::apps::UI_EXTENSION.to_owned(), ui);
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_resources()
                .enable_logging()
                .enable_extensions_with(extensions)
                .build(),
        )
        .with_server_info(Implementation::new("l402-mcp", env!("CARGO_PKG_VERSION")))
        .with_instructions(INSTRUCTIONS)
    }

    /// The MCP App views (approval card, wallet view).
    fn list_resources(
        &self,
        _request: Option<rmcp::model::PaginatedRequestParams>,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> impl std::future::Future<Output = Result<rmcp::model::ListResourcesResult, ErrorData>> + Send + '_
    {
        std::future::ready(Ok(super::apps::list()))
    }

    fn read_resource(
        &self,
        request: rmcp::model::ReadResourceRequestParams,
        _context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> impl std::future::Future<Output = Result<rmcp::model::ReadResourceResponse, ErrorData>>
    + Send
    + '_ {
        std::future::ready(super::apps::read(&request.uri).map(Into::into))
    }

    /// A client's log level: from now on the wallet's money events at or above it are sent
    /// as log notifications ([`super::notify`]); the server's own logs stay on stderr.
    #[allow(deprecated)]
    fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        context: rmcp::service::RequestContext<rmcp::RoleServer>,
    ) -> impl std::future::Future<Output = Result<(), ErrorData>> + Send + '_ {
        tracing::debug!(level = ?request.level, "client asked for a log level");
        self.set_log_level(request.level, &context);
        std::future::ready(Ok(()))
    }
}
