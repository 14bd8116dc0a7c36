//! The token store on PostgreSQL, for several gateway instances on different machines: they
//! share root keys, token terms, use counters, free-tier counts and sales through one database.
//!
//! Every counter is one `INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING` statement,
//! the same as on SQLite ([`super::sqlite`]): PostgreSQL locks the row for the statement and
//! re-checks the `WHERE` against the latest value, so instances never exceed a limit between them.
//!
//! `database_url` is a libpq-style URL, e.g. `postgres://l402:PASSWORD@db.example:5432/l402`;
//! a schema other than `public` is chosen with `options[search_path]=NAME`. Root keys travel over
//! this connection: across machines, add `sslmode=verify-full&sslrootcert=/path/ca.pem`.
//!
//! The schema is brought up to date at connect, under the advisory lock sqlx takes in
//! PostgreSQL, so instances starting together migrate once and the others wait for it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};

use super::{MintedToken, NewMintedToken, SalesSummary, StoreError, TokenStore, summarize};
use crate::ledger::{db_int, from_db};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per instance. Every query is one short statement, so a few connections serve
/// many concurrent requests; ten instances stay within PostgreSQL's default of 100 connections.
const MAX_CONNECTIONS: u32 = 10;
/// How long connecting (at start, and later while all connections are busy) may take. A request
/// that cannot reach the database in time is answered 503 by the paywall.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections are closed after this long, so a quiet instance holds none.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Root keys, token terms and counters in PostgreSQL. Cheap to clone; see the module docs.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The URL with its password replaced, for messages.
    target: String,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Connect to `url` (`postgres://...`) and bring the schema up to date.
pub async fn connect(url: &str) -> Result<Arc<dyn TokenStore>, StoreError> {
    Ok(Arc::new(PgStore::connect(url).await?))
}

impl PgStore {
    /// Connect to `url` (`postgres://...`) and bring the schema up to date. Errors name the
    /// server with the password replaced by `***`.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let redacted = Redacted::new(url);
        let not_postgres = |why: &dyn std::fmt::Display| {
            redacted.error(
                &format!("database_url {} is not usable", redacted.url),
                why,
                "write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE",
            )
        };
        let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("postgres" | "postgresql")) {
            return Err(not_postgres(&"it does not start with postgres://"));
        }
        let mut options: PgConnectOptions = url.parse().map_err(|e| not_postgres(&e))?;
        if options.get_application_name().is_none() {
            // Shown in pg_stat_activity, so an operator can tell whose connections these are.
            options = options.application_name("l402-mcp");
        }

        // A first connection of our own says why a server cannot be reached (the pool would
        // only say that it timed out).
        let probe = connect_once(&options).await.map_err(|e| {
            redacted.error(
                &format!("cannot connect to PostgreSQL at {}", redacted.url),
                &e,
                "check database_url (or L402_MCP_DATABASE_URL) and that the server is up",
            )
        })?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(CONNECT_TIMEOUT)
            .idle_timeout(IDLE_TIMEOUT)
            .connect_lazy_with(options);
        if let Err(e) = MIGRATOR.run(&pool).await {
            // sqlx releases its advisory lock only after a run that succeeds: closing the
            // sessions releases it for the other instances.
            pool.close().await;
            return Err(e.into());
        }
        tracing::info!(database = %redacted.url, "token store on PostgreSQL");
        Ok(PgStore {
            pool,
            target: redacted.url,
        })
    }
}

/// One connection, waiting up to [`CONNECT_TIMEOUT`] for a server that refuses connections
/// (still starting, as when instances and database start together).
async fn connect_once(options: &PgConnectOptions) -> Result<PgConnection, sqlx::Error> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, PgConnection::connect_with(options)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(sqlx::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && deadline.saturating_duration_since(Instant::now())
                        > Duration::from_millis(200) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                return Err(sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                )));
            }
        }
    }
}

/// A database URL fit for messages, and the secrets it held.
struct Redacted {
    url: String,
    secrets: Vec<String>,
}

impl Redacted {
    fn new(raw: &str) -> Redacted {
        let Ok(mut url) = url::Url::parse(raw) else {
            // Nothing of an unparseable URL is shown: it may be all password.
            return Redacted {
                url: "(a URL that does not parse)".into(),
                secrets: vec![raw.to_owned()],
            };
        };
        let mut secrets = Vec::new();
        if let Some(p) = url.password() {
            secrets.push(p.to_owned());
            secrets.push(percent_decode(p));
            let _ = url.set_password(Some("***"));
        }
        let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        if pairs.iter().any(|(k, _)| k == "password") {
            let shown: Vec<(String, String)> = pairs
                .into_iter()
                .map(|(k, v)| {
                    if k == "password" {
                        secrets.push(v);
                        (k, "***".to_owned())
                    } else {
                        (k, v)
                    }
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(shown);
        }
        secrets.retain(|s| !s.is_empty());
        Redacted {
            url: url.to_string(),
            secrets,
        }
    }

    /// `what: why; hint`, with any secret in `why` replaced.
    fn error(&self, what: &str, why: &dyn std::fmt::Display, hint: &str) -> StoreError {
        let mut why = why.to_string();
        for s in &self.secrets {
            why = why.replace(s.as_str(), "***");
        }
        StoreError::Db(sqlx::Error::Configuration(
            format!("{what}: {why}; {hint}").into(),
        ))
    }
}

/// `%XX` escapes decoded, as the server sees the password.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[async_trait]
impl TokenStore for PgStore {
    async fn store_minted(&self, t: &NewMintedToken<'_>, now: u64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO root_keys (key_id, root_key, created_at) VALUES ($1, $2, $3)")
            .bind(hex::encode(t.key_id))
            .bind(&t.root_key[..])
            .bind(db_int(now)?)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO minted_tokens (token_id, key_id, wallet, payment_hash, amount_msat, service, tier,
                 capabilities, valid_until, created_at, max_uses) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(hex::encode(t.token_id))
        .bind(hex::encode(t.key_id))
        .bind(t.wallet)
        .bind(hex::encode(t.payment_hash))
        .bind(db_int(t.amount_msat)?)
        .bind(t.service)
        .bind(i64::from(t.tier))
        .bind(t.capabilities.join(","))
        .bind(t.valid_until.map(db_int).transpose()?)
        .bind(db_int(now)?)
        .bind(t.max_uses.map(db_int).transpose()?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn root_key(&self, key_id: &[u8; 32]) -> Result<Option<[u8; 32]>, StoreError> {
        let key: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT root_key FROM root_keys WHERE key_id = $1")
                .bind(hex::encode(key_id))
                .fetch_optional(&self.pool)
                .await?;
        key.map(|k| {
            <[u8; 32]>::try_from(k.as_slice())
                .map_err(|_| StoreError::Corrupt("root key is not 32 bytes".into()))
        })
        .transpose()
    }

    async fn minted_token(&self, token_id: &[u8; 32]) -> Result<Option<MintedToken>, StoreError> {
        Ok(sqlx::query_as("SELECT token_id, wallet, payment_hash, amount_msat, service, tier, capabilities, valid_until, created_at, max_uses FROM minted_tokens WHERE token_id = $1")
            .bind(hex::encode(token_id))
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn use_token(
        &self,
        token_id: &[u8; 32],
        max_uses: u64,
    ) -> Result<Option<u64>, StoreError> {
        let uses: Option<i64> = sqlx::query_scalar(
            "INSERT INTO token_uses (token_id, uses) VALUES ($1, 1)
             ON CONFLICT (token_id) DO UPDATE SET uses = token_uses.uses + 1 WHERE token_uses.uses < $2
             RETURNING uses",
        )
        .bind(hex::encode(token_id))
        .bind(db_int(max_uses)?)
        .fetch_optional(&self.pool)
        .await?;
        // The first use of a token limited to 0 uses slips past the WHERE: refuse it here.
        let uses = uses.map(|u| from_db("token uses", u)).transpose()?;
        Ok(uses.filter(|u| *u <= max_uses))
    }

    async fn free_tier_hit(
        &self,
        client: &str,
        route: &str,
        day: u64,
        limit: u64,
    ) -> Result<bool, StoreError> {
        if limit == 0 {
            return Ok(false);
        }
        let count: Option<i64> = sqlx::query_scalar(
            "INSERT INTO free_tier (client, route, day, count) VALUES ($1, $2, $3, 1)
             ON CONFLICT (client, route, day) DO UPDATE SET count = free_tier.count + 1 WHERE free_tier.count < $4
             RETURNING count",
        )
        .bind(client)
        .bind(route)
        .bind(db_int(day)?)
        .bind(db_int(limit)?)
        .fetch_optional(&self.pool)
        .await?;
        Ok(count.is_some())
    }

    async fn record_sale(
        &self,
        payment_hash: &[u8; 32],
        token_id: &[u8; 32],
        service: &str,
        amount_msat: u64,
        now: u64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO sales (payment_hash, token_id, service, amount_msat, sold_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (payment_hash) DO NOTHING",
        )
        .bind(hex::encode(payment_hash))
        .bind(hex::encode(token_id))
        .bind(service)
        .bind(db_int(amount_msat)?)
        .bind(db_int(now)?)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn sales_since(&self, since: u64) -> Result<SalesSummary, StoreError> {
        // SUM of BIGINT is NUMERIC in PostgreSQL: back to BIGINT, as SQLite gives it.
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT service, COUNT(*), COALESCE(SUM(amount_msat), 0)::BIGINT FROM sales WHERE sold_at >= $1 GROUP BY service ORDER BY service",
        )
        .bind(db_int(since)?)
        .fetch_all(&self.pool)
        .await?;
        summarize(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_hide_passwords() {
        let r = Redacted::new("postgres://l402:s3cr%40t@db.example:5433/l402?sslmode=require");
        assert_eq!(
            r.url,
            "postgres://l402:***@db.example:5433/l402?sslmode=require"
        );
        let e = r.error("failed", &"auth s3cr%40t / s3cr@t", "").to_string();
        assert!(!e.contains("s3cr"), "{e}");

        let r =
            Redacted::new("postgres://db.example/l402?user=l402&password=hunter22&sslmode=disable");
        assert!(
            !r.url.contains("hunter22") && r.url.contains("password=***"),
            "{}",
            r.url
        );
        assert!(
            !r.error("x", &"hunter22", "")
                .to_string()
                .contains("hunter22")
        );

        let r = Redacted::new("not a url with hunter22");
        assert!(!r.url.contains("hunter22"));
        assert_eq!(
            Redacted::new("postgres://l402@db/l402").url,
            "postgres://l402@db/l402"
        );
    }
}
