//! A route of the gateway: a path prefix, its price and what a token for it allows, as the
//! paywall uses it ([`Route`]) and as the config file writes it ([`RouteConfig`]).

use serde::{Deserialize, Serialize};

use super::payment::AuthMode;
use crate::l402::caveat;

/// How a route is priced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Price {
    /// Free: no credential needed.
    Free,
    /// A fixed price, in msat.
    Fixed { msat: u64 },
    /// Asked per request of a pricing endpoint (POST `{method, path, query}` → `{"price_sats": N}`
    /// or `{"price_msat": N}`).
    Hook { url: String },
}

/// One priced (or free) path prefix.
#[derive(Debug, Clone, Serialize)]
pub struct Route {
    /// Path prefix, e.g. `/api/weather` (matches `/api/weather` and `/api/weather/...`).
    pub path: String,
    pub price: Price,
    pub service: String,
    pub tier: u8,
    pub capabilities: Vec<String>,
    /// Token lifetime; `None`: the token does not expire.
    pub valid_for_secs: Option<u64>,
    /// Requests one token pays for; `None`: unlimited.
    pub max_uses: Option<u64>,
    /// Free requests per client network (IPv4 /24, IPv6 /48) per UTC day.
    pub free_per_day: u64,
    /// Bind tokens to the method of the request that got the challenge (`<service>_methods`).
    pub bind_method: bool,
    /// Bind tokens to this route's path prefix (`<service>_path_prefix`).
    pub bind_path: bool,
    /// Human description for discovery documents.
    pub description: Option<String>,
    /// Which schemes are offered and accepted: L402, `Payment` (MPP), or both (the default).
    pub auth: AuthMode,
    /// Send the legacy `LSAT` challenge line before `L402` (Aperture does; some clients refuse
    /// a 402 whose first challenge is `LSAT`).
    pub send_lsat: bool,
    /// Offer `Payment` sessions (a deposit spent request by request, refunded at close).
    pub sessions: bool,
    /// A session's deposit, in requests; default 20.
    pub session_deposit_requests: Option<u64>,
    /// Seconds without a request after which a session is closed and refunded; default 300.
    pub session_idle_secs: Option<u64>,
}

impl Route {
    /// A route at `path` for `price`, service named after the path.
    pub fn new(path: &str, price: Price) -> Route {
        let service = path.trim_matches('/').replace(['/', '.', ':', ','], "-");
        Route {
            path: path.to_owned(),
            price,
            service: if service.is_empty() {
                "api".into()
            } else {
                service
            },
            tier: 0,
            capabilities: Vec::new(),
            valid_for_secs: None,
            max_uses: None,
            free_per_day: 0,
            bind_method: false,
            bind_path: false,
            description: None,
            auth: AuthMode::Both,
            send_lsat: true,
            sessions: false,
            session_deposit_requests: None,
            session_idle_secs: None,
        }
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        let prefix = self.path.trim_end_matches('/');
        prefix.is_empty()
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }
}

/// Route settings as written in the config file (`[[gateway.routes]]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    pub path: String,
    /// Fixed price in sats.
    #[serde(default)]
    pub price_sats: Option<u64>,
    /// Pricing endpoint asked per request instead of a fixed price.
    #[serde(default)]
    pub pricing_hook: Option<String>,
    /// No payment needed.
    #[serde(default)]
    pub free: bool,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub tier: Option<u8>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default)]
    pub valid_for_secs: Option<u64>,
    #[serde(default)]
    pub max_uses: Option<u64>,
    #[serde(default)]
    pub free_per_day: u64,
    /// Tokens work only with the method of the request that was challenged.
    #[serde(default)]
    pub bind_method: bool,
    /// Tokens work only under this route's path.
    #[serde(default)]
    pub bind_path: bool,
    #[serde(default)]
    pub description: Option<String>,
    /// `"l402"`, `"mpp"` or `"l402+mpp"` (the default): the schemes offered and accepted.
    #[serde(default)]
    pub auth: Option<String>,
    /// Send the legacy `LSAT` line before `L402` (default true, as Aperture does).
    #[serde(default)]
    pub send_lsat: Option<bool>,
    /// Offer `Payment` sessions too (a deposit, refunded at close).
    #[serde(default)]
    pub sessions: bool,
    /// A session's deposit in requests (default 20).
    #[serde(default)]
    pub session_deposit_requests: Option<u64>,
    /// Seconds without a request before a session is closed and refunded (default 300).
    #[serde(default)]
    pub session_idle_secs: Option<u64>,
}

impl RouteConfig {
    /// Check and turn into a [`Route`].
    pub(crate) fn into_route(self) -> Result<Route, String> {
        if !self.path.starts_with('/') {
            return Err(format!("route path {:?} must start with '/'", self.path));
        }
        caveat::validate_path_prefix(&self.path).map_err(|e| format!("route: {e}"))?;
        let price = match (self.free, self.price_sats, self.pricing_hook) {
            (true, None, None) => Price::Free,
            (false, Some(0), None) => {
                return Err(format!(
                    "route {}: price_sats must be at least 1 (or free = true)",
                    self.path
                ));
            }
            (false, Some(sats), None) => Price::Fixed {
                msat: crate::budget::sats_to_msat("price_sats", sats)
                    .map_err(|e| format!("route {}: {e}", self.path))?,
            },
            (false, None, Some(url)) => Price::Hook { url },
            _ => {
                return Err(format!(
                    "route {}: give exactly one of price_sats, pricing_hook or free = true",
                    self.path
                ));
            }
        };
        let mut r = Route::new(&self.path, price);
        if let Some(s) = self.service {
            crate::l402::caveat::validate_service_name(&s)
                .map_err(|e| format!("route {}: {e}", self.path))?;
            r.service = s;
        }
        for c in &self.capabilities {
            crate::l402::caveat::validate_capability(c)
                .map_err(|e| format!("route {}: {e}", self.path))?;
        }
        crate::mint::check_token_terms(self.valid_for_secs, self.max_uses)
            .map_err(|e| format!("route {}: {e}", self.path))?;
        r.tier = self.tier.unwrap_or(0);
        r.capabilities = self.capabilities;
        r.valid_for_secs = self.valid_for_secs;
        r.max_uses = self.max_uses;
        r.free_per_day = self.free_per_day;
        r.bind_method = self.bind_method;
        r.bind_path = self.bind_path;
        r.description = self.description;
        if let Some(auth) = &self.auth {
            r.auth = auth
                .parse()
                .map_err(|e| format!("route {}: {e}", self.path))?;
        }
        r.send_lsat = self.send_lsat.unwrap_or(true);
        r.sessions = self.sessions;
        if r.sessions && !r.auth.mpp() {
            return Err(format!(
                "route {}: sessions are a Payment (mpp) feature; set auth = \"mpp\" or \"l402+mpp\"",
                self.path
            ));
        }
        if let Some(n) = self.session_deposit_requests {
            crate::mint::in_range("session_deposit_requests", n, 1, 1_000_000, "")
                .map_err(|e| format!("route {}: {e}", self.path))?;
        }
        if let Some(secs) = self.session_idle_secs {
            crate::mint::in_range("session_idle_secs", secs, 1, 30 * 24 * 3600, " seconds")
                .map_err(|e| format!("route {}: {e}", self.path))?;
        }
        r.session_deposit_requests = self.session_deposit_requests;
        r.session_idle_secs = self.session_idle_secs;
        Ok(r)
    }
}
