//! Configuration: a TOML file plus environment overrides; command-line flags override both.
//!
//! The file is `--config PATH`, else `$L402_MCP_CONFIG`, else `$XDG_CONFIG_HOME/l402-mcp/config.toml`
//! (or `~/.config/l402-mcp/config.toml`) when it exists. Every setting is optional:
//!
//! ```toml
//! data_dir = "/home/me/.local/share/l402-mcp"   # env L402_MCP_DATA_DIR
//! wallet = "default"                             # env L402_MCP_WALLET
//! # Sellers: root keys, token terms, use counters, free-tier counts and sales in PostgreSQL
//! # instead of the ledger, shared by every gateway and MCP server pointed at it.
//! database_url = "postgres://l402:PASSWORD@db.example/l402"   # env L402_MCP_DATABASE_URL
//!
//! [budget]            # applied at every start, over what `l402-mcp budget set` stored
//! per_payment_sats = 1000      # env L402_MCP_PER_PAYMENT_SATS
//! daily_sats = 10000           # env L402_MCP_DAILY_SATS
//! hourly_sats = 2000           # env L402_MCP_HOURLY_SATS
//! per_host_daily_sats = 5000   # env L402_MCP_PER_HOST_DAILY_SATS
//! allow_hosts = ["api.example.com"]
//! deny_hosts = []
//! max_fee_sats = 10
//! max_fee_percent = 1.0
//!
//! [approval]          # payments a human must approve first (off unless set)
//! above_sats = 100     # env L402_MCP_APPROVAL_ABOVE_SATS: payments above this many sats
//! new_host = true      # env L402_MCP_APPROVAL_NEW_HOST: the first payment to a payee
//! timeout_secs = 300   # env L402_MCP_APPROVAL_TIMEOUT_SECS: how long a question waits
//!
//! [backend]           # the wallet; default: the embedded demo wallet
//! kind = "lnbits"     # embedded | lnbits | lnd | cln | phoenixd | nwc | blink | strike | lnbot |
//!                     # opennode   (env L402_MCP_BACKEND)
//! url = "https://lnbits.example.com"   # every field also as env L402_MCP_<KIND>_<FIELD>,
//! admin_key = "..."                    # e.g. L402_MCP_LNBITS_ADMIN_KEY
//! invoice_key = "..."
//!
//! [fetch]             # what fetch_paid may reach besides public addresses (default: nothing)
//! allow_loopback = false      # env L402_MCP_FETCH_ALLOW_LOOPBACK=1
//! allow_private = false       # env L402_MCP_FETCH_ALLOW_PRIVATE=1 (10/8, 172.16/12, 192.168/16, ...)
//! allow_link_local = false    # env L402_MCP_FETCH_ALLOW_LINK_LOCAL=1 (169.254/16: cloud metadata!)
//! # proxy = "http://proxy.internal:3128"   # env L402_MCP_FETCH_PROXY; HTTP_PROXY etc. are ignored
//! prefer_scheme = "l402"      # env L402_MCP_FETCH_PREFER_SCHEME: when a 402 offers several ways to
//!                             # pay: l402 (default), payment (a Payment charge) or session
//!
//! [history]           # how long payments and sold tokens are kept (expired rows go sooner)
//! keep_days = 365     # env L402_MCP_HISTORY_KEEP_DAYS: at least 2; 0 keeps everything
//!
//! [http]              # `l402-mcp serve --http`
//! bearer_token = "..."         # env L402_MCP_HTTP_TOKEN
//! allowed_hosts = ["mcp.example.com"]          # env L402_MCP_ALLOWED_HOSTS (comma-separated)
//! allowed_origins = ["https://app.example.com"]  # env L402_MCP_ALLOWED_ORIGINS
//! max_sessions = 256           # env L402_MCP_MAX_SESSIONS: sessions kept, both transports
//! session_idle_secs = 1800     # env L402_MCP_SESSION_IDLE_SECS: idle sessions are closed
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::approval::{ApprovalChange, ApprovalPolicy, PolicyError};
use crate::budget::{BudgetChange, BudgetPolicy, LimitError};
use crate::wallet::BackendConfig;

/// Environment variable naming the data dir.
pub const DATA_DIR_ENV: &str = "L402_MCP_DATA_DIR";
/// Environment variable naming the wallet.
pub const WALLET_ENV: &str = "L402_MCP_WALLET";
/// Environment variable naming the config file.
pub const CONFIG_ENV: &str = "L402_MCP_CONFIG";
/// Environment variable holding the HTTP bearer token.
pub const HTTP_TOKEN_ENV: &str = "L402_MCP_HTTP_TOKEN";
/// Environment variable holding the sellers' PostgreSQL URL.
pub const DATABASE_URL_ENV: &str = "L402_MCP_DATABASE_URL";
/// The wallet used when none is named.
pub const DEFAULT_WALLET: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {message}")]
    Parse { path: String, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("the [backend] settings are not valid: {0}")]
    Backend(String),
    #[error("the budget settings ([budget] or L402_MCP_*_SATS) are not valid: {0}")]
    Budget(#[from] LimitError),
    #[error("the [http] settings (or their L402_MCP_* variables) are not valid: {0}")]
    Http(String),
    #[error("the [approval] settings (or L402_MCP_APPROVAL_*) are not valid: {0}")]
    Approval(#[from] PolicyError),
    #[error("the [history] settings (or L402_MCP_HISTORY_KEEP_DAYS) are not valid: {0}")]
    History(String),
}

/// Everything a config file can say.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub data_dir: Option<PathBuf>,
    pub wallet: Option<String>,
    /// `postgres://...`: the sellers' token store (see [`Config::database_url`]).
    pub database_url: Option<SecretString>,
    #[serde(default)]
    pub budget: BudgetConfig,
    /// `[approval]`: which payments a human must approve, applied at every start over the
    /// stored policy (as `[budget]` is).
    #[serde(default)]
    pub approval: ApprovalChange,
    #[serde(default)]
    pub http: HttpConfig,
    /// `[history]`: how long history is kept (see [`HistoryConfig`]).
    #[serde(default)]
    pub history: HistoryConfig,
    /// `l402-mcp gateway` settings.
    #[serde(default)]
    pub gateway: Option<crate::gateway::GatewayConfig>,
    /// `l402-mcp mcp-gateway` settings.
    #[serde(default)]
    pub mcp_gateway: Option<crate::mcp_gateway::McpGatewayConfig>,
    /// What `fetch_paid` may reach besides public addresses, and through which proxy.
    #[serde(default)]
    pub fetch: FetchConfig,
    /// The `[backend]` table as written (merged with the environment); see [`Config::backend`].
    #[serde(default)]
    pub backend: Option<BackendTable>,
}

/// The `[backend]` table before it is read as a [`BackendConfig`]. It holds the wallet's
/// secrets as plain values, so its `Debug` shows the kind and the names of the settings only.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(transparent)]
pub struct BackendTable(pub toml::Table);

impl std::fmt::Debug for BackendTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self.0.get("kind").and_then(|k| k.as_str()).unwrap_or("?");
        let names: Vec<&str> = self.0.keys().map(String::as_str).collect();
        write!(f, "BackendTable {{ kind: {kind:?}, set: {names:?} }}")
    }
}

pub use crate::secret::SecretString;

/// Budget settings in sats; unset ones keep the stored policy.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetConfig {
    pub per_payment_sats: Option<u64>,
    pub daily_sats: Option<u64>,
    pub hourly_sats: Option<u64>,
    pub per_host_daily_sats: Option<u64>,
    pub allow_hosts: Option<Vec<String>>,
    pub deny_hosts: Option<Vec<String>>,
    pub max_fee_sats: Option<u64>,
    pub max_fee_percent: Option<f64>,
}

/// `[fetch]`: what `fetch_paid` and `discover` may reach besides public addresses, and an
/// explicit proxy (the environment's `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` are never used).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FetchConfig {
    pub allow_loopback: bool,
    pub allow_private: bool,
    pub allow_link_local: bool,
    /// `http://host:port` (may hold a password): send every request through this proxy.
    pub proxy: Option<SecretString>,
    /// Which offer of a 402 to pay when several are made (default: L402 first).
    pub prefer_scheme: Option<crate::fetch::SchemePreference>,
}

impl FetchConfig {
    /// The address policy.
    pub fn policy(&self) -> crate::netguard::NetPolicy {
        crate::netguard::NetPolicy {
            allow_loopback: self.allow_loopback,
            allow_private: self.allow_private,
            allow_link_local: self.allow_link_local,
        }
    }
}

impl From<crate::netguard::NetPolicy> for FetchConfig {
    fn from(p: crate::netguard::NetPolicy) -> FetchConfig {
        FetchConfig {
            allow_loopback: p.allow_loopback,
            allow_private: p.allow_private,
            allow_link_local: p.allow_link_local,
            proxy: None,
            prefer_scheme: None,
        }
    }
}

/// `[history]`: how long payments and minted tokens are kept before they are deleted (a year
/// unless set; `0` keeps them all). Expired credentials, invoices and counters go sooner
/// whatever this says; see [`crate::storage::Retention`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    pub keep_days: Option<u64>,
}

/// The longest `keep_days` (a hundred years; 0 keeps everything anyway).
pub const MAX_KEEP_DAYS: u64 = 36_500;

impl HistoryConfig {
    /// Refuse a period that would reach into the budget windows, or overflow.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.keep_days {
            Some(d) if d != 0 && !(crate::storage::MIN_KEEP_DAYS..=MAX_KEEP_DAYS).contains(&d) => {
                Err(ConfigError::History(format!(
                    "keep_days must be 0 (keep everything) or from {} to {MAX_KEEP_DAYS}, not {d}",
                    crate::storage::MIN_KEEP_DAYS
                )))
            }
            _ => Ok(()),
        }
    }

    /// The retention policy these settings ask for.
    pub fn retention(&self) -> crate::storage::Retention {
        match self.keep_days {
            None => crate::storage::Retention::default(),
            Some(0) => crate::storage::Retention::forever(),
            Some(d) => crate::storage::Retention::days(d),
        }
    }
}

/// Settings of the HTTP transport.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub bearer_token: Option<SecretString>,
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// MCP sessions kept at once over both HTTP transports (default 256).
    pub max_sessions: Option<usize>,
    /// Seconds without a message after which a session is closed (default 1800).
    pub session_idle_secs: Option<u64>,
}

/// The most sessions `max_sessions` may allow.
pub const MAX_SESSIONS_LIMIT: usize = 100_000;
/// The longest `session_idle_secs`: a week.
pub const MAX_SESSION_IDLE_SECS: u64 = 7 * 24 * 3600;

impl HttpConfig {
    /// Refuse session limits out of range.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(n) = self
            .max_sessions
            .filter(|n| !(1..=MAX_SESSIONS_LIMIT).contains(n))
        {
            return Err(ConfigError::Http(format!(
                "max_sessions must be from 1 to {MAX_SESSIONS_LIMIT}, not {n}"
            )));
        }
        if let Some(s) = self
            .session_idle_secs
            .filter(|s| !(1..=MAX_SESSION_IDLE_SECS).contains(s))
        {
            return Err(ConfigError::Http(format!(
                "session_idle_secs must be from 1 to {MAX_SESSION_IDLE_SECS}, not {s}"
            )));
        }
        Ok(())
    }
}

impl BudgetConfig {
    pub fn is_empty(&self) -> bool {
        *self == BudgetConfig::default()
    }

    /// The settings given here, as a change to a stored policy.
    pub fn change(&self) -> BudgetChange {
        BudgetChange {
            per_payment_sats: self.per_payment_sats,
            daily_sats: self.daily_sats,
            hourly_sats: self.hourly_sats.map(Some),
            per_host_daily_sats: self.per_host_daily_sats.map(Some),
            allow_hosts: self.allow_hosts.clone(),
            deny_hosts: self.deny_hosts.clone(),
            max_fee_sats: self.max_fee_sats,
            max_fee_percent: self.max_fee_percent,
        }
    }

    /// Apply the settings given here to `policy` (the rule `budget set` follows too).
    pub fn apply(&self, policy: &mut BudgetPolicy) -> Result<(), LimitError> {
        self.change().apply(policy)
    }
}

impl Config {
    /// Read the config file (`path`, else the environment's, else the default one if it exists)
    /// and apply environment overrides.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let explicit = path.map(Path::to_owned).or_else(|| env_path(CONFIG_ENV));
        let mut config = match explicit {
            Some(p) => Self::read(&p)?,
            None => match default_config_file() {
                Some(p) if p.is_file() => Self::read(&p)?,
                _ => Config::default(),
            },
        };
        config.apply_env()?;
        // Out-of-range settings are refused here, by every command, not met later.
        config.budget.apply(&mut BudgetPolicy::default())?;
        config.approval.apply(&mut ApprovalPolicy::default())?;
        config.http.validate()?;
        config.history.validate()?;
        Ok(config)
    }

    fn read(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.display().to_string(),
            message,
        })
    }

    /// Parse config text. An error says where and what, and never quotes the text: the line
    /// at fault may hold a secret.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let message = e.message().trim_end();
            match e.span() {
                Some(span) => {
                    let before = text.get(..span.start).unwrap_or(text);
                    let line = before.matches('\n').count() + 1;
                    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                    format!("line {line}, column {column}: {message}")
                }
                None => message.to_owned(),
            }
        })
    }

    fn apply_env(&mut self) -> Result<(), ConfigError> {
        if let Some(p) = env_path(DATA_DIR_ENV) {
            self.data_dir = Some(p);
        }
        if let Some(w) = env_string(WALLET_ENV) {
            self.wallet = Some(w);
        }
        if let Some(u) = env_string(DATABASE_URL_ENV) {
            self.database_url = Some(SecretString::from(u));
        }
        let sats = |name| env_number(name, "a whole number of sats");
        if let Some(v) = sats("L402_MCP_PER_PAYMENT_SATS")? {
            self.budget.per_payment_sats = Some(v);
        }
        if let Some(v) = sats("L402_MCP_DAILY_SATS")? {
            self.budget.daily_sats = Some(v);
        }
        if let Some(v) = sats("L402_MCP_HOURLY_SATS")? {
            self.budget.hourly_sats = Some(v);
        }
        if let Some(v) = sats("L402_MCP_PER_HOST_DAILY_SATS")? {
            self.budget.per_host_daily_sats = Some(v);
        }
        self.apply_backend_env();
        if let Some(v) = sats("L402_MCP_APPROVAL_ABOVE_SATS")? {
            self.approval.above_sats = Some(Some(v));
        }
        if let Some(v) = env_number(
            "L402_MCP_APPROVAL_TIMEOUT_SECS",
            "a whole number of seconds",
        )? {
            self.approval.timeout_secs = Some(v);
        }
        let flag = |name: &'static str| -> Result<Option<bool>, ConfigError> {
            env_string(name)
                .map(|v| match v.trim().to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" | "on" => Ok(true),
                    "0" | "false" | "no" | "off" => Ok(false),
                    _ => Err(ConfigError::Env {
                        name,
                        message: format!("{v:?} is not true or false"),
                    }),
                })
                .transpose()
        };
        if let Some(v) = flag("L402_MCP_APPROVAL_NEW_HOST")? {
            self.approval.new_host = Some(v);
        }
        if let Some(v) = flag("L402_MCP_FETCH_ALLOW_LOOPBACK")? {
            self.fetch.allow_loopback = v;
        }
        if let Some(v) = flag("L402_MCP_FETCH_ALLOW_PRIVATE")? {
            self.fetch.allow_private = v;
        }
        if let Some(v) = flag("L402_MCP_FETCH_ALLOW_LINK_LOCAL")? {
            self.fetch.allow_link_local = v;
        }
        if let Some(v) = env_string("L402_MCP_FETCH_PROXY") {
            self.fetch.proxy = Some(SecretString::from(v));
        }
        if let Some(v) = env_string("L402_MCP_FETCH_PREFER_SCHEME") {
            self.fetch.prefer_scheme = Some(v.parse().map_err(|message| ConfigError::Env {
                name: "L402_MCP_FETCH_PREFER_SCHEME",
                message,
            })?);
        }
        if let Some(t) = env_string(HTTP_TOKEN_ENV) {
            self.http.bearer_token = Some(SecretString::from(t));
        }
        if let Some(v) = env_string("L402_MCP_ALLOWED_HOSTS") {
            self.http.allowed_hosts = split_list(&v);
        }
        if let Some(v) = env_string("L402_MCP_ALLOWED_ORIGINS") {
            self.http.allowed_origins = split_list(&v);
        }
        if let Some(n) = env_number("L402_MCP_MAX_SESSIONS", "a whole number")? {
            self.http.max_sessions = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(s) = env_number("L402_MCP_SESSION_IDLE_SECS", "a whole number of seconds")? {
            self.http.session_idle_secs = Some(s);
        }
        if let Some(d) = env_number("L402_MCP_HISTORY_KEEP_DAYS", "a whole number of days")? {
            self.history.keep_days = Some(d);
        }
        Ok(())
    }

    /// `L402_MCP_BACKEND=<kind>` picks the backend; `L402_MCP_<KIND>_<FIELD>=value` sets any of
    /// its fields (over the file's), e.g. `L402_MCP_LNBITS_ADMIN_KEY`.
    fn apply_backend_env(&mut self) {
        let mut table = self.backend.take().map(|b| b.0).unwrap_or_default();
        if let Some(kind) = env_string("L402_MCP_BACKEND") {
            let kind = kind.trim().to_ascii_lowercase();
            if table.get("kind").and_then(|k| k.as_str()) != Some(kind.as_str()) {
                table.clear(); // another backend's file settings do not carry over
            }
            table.insert("kind".into(), toml::Value::String(kind));
        }
        if let Some(kind) = table
            .get("kind")
            .and_then(|k| k.as_str())
            .map(str::to_ascii_uppercase)
        {
            let prefix = format!("L402_MCP_{kind}_");
            for (name, value) in std::env::vars() {
                if let Some(field) = name.strip_prefix(&prefix)
                    && !value.trim().is_empty()
                {
                    let value = match value.trim().parse::<i64>() {
                        Ok(n) if field.ends_with("_SECS") => toml::Value::Integer(n),
                        _ => toml::Value::String(value),
                    };
                    table.insert(field.to_ascii_lowercase(), value);
                }
            }
            if let Some(n) = env_string("L402_MCP_NETWORK") {
                table.insert("network".into(), toml::Value::String(n));
            }
        }
        self.backend = (!table.is_empty()).then_some(BackendTable(table));
    }

    /// The wallet backend: the embedded wallet unless configured.
    pub fn backend(&self) -> Result<BackendConfig, ConfigError> {
        match &self.backend {
            None => Ok(BackendConfig::Embedded),
            Some(BackendTable(table)) => {
                BackendConfig::deserialize(toml::Value::Table(table.clone()))
                    .map_err(|e| ConfigError::Backend(e.to_string()))
            }
        }
    }

    /// The data dir: the configured one, else the XDG default.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.data_dir.clone().or_else(default_data_dir)
    }

    pub fn wallet(&self) -> &str {
        self.wallet.as_deref().unwrap_or(DEFAULT_WALLET)
    }

    /// Where sellers keep root keys, token terms, use counters, free-tier counts and sales when
    /// not in the ledger: `database_url` (or `$L402_MCP_DATABASE_URL`), else `[gateway]
    /// database_url`. Every command that sells (`serve`, `gateway`, `challenge`, `verify`,
    /// `sales`) uses it, so tokens minted by the MCP tools and by any gateway on it are one set.
    pub fn database_url(&self) -> Option<&str> {
        self.database_url
            .as_ref()
            .or(self.gateway.as_ref().and_then(|g| g.database_url.as_ref()))
            .map(SecretString::expose)
    }
}

fn env_string(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// A whole number from the environment variable `name`, if set; `what` names it in the error.
fn env_number(name: &'static str, what: &str) -> Result<Option<u64>, ConfigError> {
    env_string(name)
        .map(|v| {
            v.trim().parse().map_err(|_| ConfigError::Env {
                name,
                message: format!("{v:?} is not {what}"),
            })
        })
        .transpose()
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn xdg_dir(var: &str, fallback: &[&str]) -> Option<PathBuf> {
    env_path(var).or_else(|| {
        let mut p = env_path("HOME")?;
        p.extend(fallback);
        Some(p)
    })
}

/// The default data dir, or `None` when neither `XDG_DATA_HOME` nor `HOME` is set.
pub fn default_data_dir() -> Option<PathBuf> {
    xdg_dir("XDG_DATA_HOME", &[".local", "share"]).map(|p| p.join("l402-mcp"))
}

/// The default config file location.
pub fn default_config_file() -> Option<PathBuf> {
    xdg_dir("XDG_CONFIG_HOME", &[".config"]).map(|p| p.join("l402-mcp").join("config.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_kept_a_year_unless_set() {
        use crate::storage::Retention;
        let days = |text: &str| Config::parse(text).map(|c| c.history);
        let default = days("").unwrap_or_default();
        assert_eq!(default.retention(), Retention::days(365));
        let set = days("[history]\nkeep_days = 30").unwrap_or_default();
        assert!(set.validate().is_ok());
        assert_eq!(set.retention(), Retention::days(30));
        let all = days("[history]\nkeep_days = 0").unwrap_or_default();
        assert_eq!(all.retention(), Retention::forever());
        for short in ["1", "36501"] {
            let h = days(&format!("[history]\nkeep_days = {short}")).unwrap_or_default();
            assert!(
                matches!(h.validate(), Err(ConfigError::History(_))),
                "{short}"
            );
        }
        assert!(days("[history]\nkeep = 3").is_err());
    }

    #[test]
    fn parses_a_full_file_and_refuses_typos() {
        let c = Config::parse(
            r#"
            data_dir = "/tmp/x"
            wallet = "agent"
            [budget]
            per_payment_sats = 50
            daily_sats = 500
            max_fee_percent = 0.5
            [http]
            bearer_token = "s3cret"
            allowed_hosts = ["mcp.example.com"]
            "#,
        )
        .unwrap_or_default();
        assert_eq!(c.wallet(), "agent");
        let mut p = BudgetPolicy::default();
        assert!(c.budget.apply(&mut p).is_ok());
        assert_eq!(
            (p.per_payment_msat, p.daily_msat, p.max_fee_ppm),
            (50_000, 500_000, 5_000)
        );
        assert!(!format!("{:?}", c.http).contains("s3cret"));
        let pg = Config::parse(
            "database_url = \"postgres://u:hunter22@db/l402\"\n[gateway]\ndatabase_url = \"postgres://g:pw2@db/x\"",
        )
        .unwrap_or_default();
        assert_eq!(pg.database_url(), Some("postgres://u:hunter22@db/l402"));
        assert!(!format!("{pg:?}").contains("hunter22") && !format!("{pg:?}").contains("pw2"));
        let gw_only = Config::parse("[gateway]\ndatabase_url = \"postgres://g:pw2@db/x\"")
            .unwrap_or_default();
        assert_eq!(gw_only.database_url(), Some("postgres://g:pw2@db/x"));
        assert!(Config::parse("[budget]\ndaily = 5").is_err());
        assert!(matches!(c.backend(), Ok(BackendConfig::Embedded)));
        let lnbits = Config::parse("[backend]\nkind = \"lnbits\"\nurl = \"http://x\"\nadmin_key = \"a\"\ninvoice_key = \"i\"").unwrap_or_default();
        assert!(matches!(lnbits.backend(), Ok(BackendConfig::Lnbits(_))));
        let missing =
            Config::parse("[backend]\nkind = \"lnbits\"\nurl = \"http://x\"").unwrap_or_default();
        assert!(
            matches!(missing.backend(), Err(ConfigError::Backend(m)) if m.contains("admin_key"))
        );
        let unknown = Config::parse("[backend]\nkind = \"paypal\"").unwrap_or_default();
        assert!(unknown.backend().is_err());
        assert!(Config::parse("walet = \"x\"").is_err());
    }
}
