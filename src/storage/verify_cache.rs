//! What verifying a credential reads, kept in memory: the root key and sale terms of tokens
//! verified lately, so a gateway checks a token it has seen without a round trip to the
//! database (issue 16: the read was most of the ~30 µs a token cost over the free route).
//!
//! Only what cannot change is kept: a root key and its token's terms are written once at mint
//! and never updated. The one change that matters is a revocation (the root key deleted), so an
//! entry lives until one of:
//! - this engine revokes the token ([`super::SellerStore::revoke`] drops it before answering:
//!   refused at once here);
//! - on PostgreSQL, another instance (or anyone) deletes or changes the row: a trigger
//!   (`migrations/postgres/0008_verify_cache.sql`) sends `NOTIFY l402_root_keys, '<key id>'`
//!   and every instance's listener drops the entry when it is delivered (milliseconds after the
//!   commit). While the listener is not connected (starting, reconnecting, its runtime gone)
//!   nothing is served from memory and nothing is kept, and after each (re)connection
//!   everything is forgotten, since notifications sent meanwhile are lost;
//! - its time to live runs out: [`SQLITE_TTL`] on SQLite, where other processes on the same
//!   file have no way to tell us (none of ours revokes today, but a future command or an
//!   operator's SQL might); [`POSTGRES_TTL`] on PostgreSQL, a bound in case the listener's
//!   connection dies without either end noticing.
//!
//! A read racing an invalidation cannot put the stale answer back: every invalidation bumps an
//! epoch, and a read's answer is kept only if the epoch is the one seen before the read began.
//! Unknown tokens are never kept (anyone can make up key ids). Use counts are not kept at all:
//! a token limited to N uses still counts each use with one atomic statement in the database,
//! exact across instances; expiry is a caveat checked against the clock on every request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{info, warn};

use super::seller::MintedToken;
use crate::l402::{RootKey, TokenId};

/// How long an entry is trusted on SQLite (see the module docs).
pub(crate) const SQLITE_TTL: Duration = Duration::from_secs(1);
/// How long an entry is trusted on PostgreSQL, notifications aside.
pub(crate) const POSTGRES_TTL: Duration = Duration::from_secs(30);
/// Entries kept; the map is emptied when full (each is a few hundred bytes).
pub(crate) const CAPACITY: usize = 16_384;
/// The channel the PostgreSQL trigger notifies; the payload is the key id in hex.
pub(crate) const CHANNEL: &str = "l402_root_keys";
/// Wait before connecting the listener again after a failure.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// What [`super::SellerStore::root_key_and_terms`] answers for a known token.
pub(crate) type Known = (RootKey, Option<MintedToken>);

struct Entry {
    token_id: TokenId,
    root_key: RootKey,
    terms: Option<MintedToken>,
    at: Instant,
}

#[derive(Default)]
struct Entries {
    map: HashMap<[u8; 32], Entry>,
    /// Bumped by every invalidation.
    epoch: u64,
}

/// The root keys and terms of tokens verified lately, by key id. Shared by every handle of
/// one engine.
pub(crate) struct VerifyCache {
    entries: Mutex<Entries>,
    ttl: Duration,
    /// Whether what is kept can be trusted: always on SQLite; on PostgreSQL while the
    /// listener is connected.
    live: AtomicBool,
    /// Stops the listener when the engine is dropped.
    _stop: Option<DropGuard>,
}

impl std::fmt::Debug for VerifyCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyCache")
            .field("ttl", &self.ttl)
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl VerifyCache {
    /// A cache told about revocations by this engine only (SQLite).
    pub(crate) fn local(ttl: Duration) -> Arc<VerifyCache> {
        Arc::new(VerifyCache {
            entries: Mutex::default(),
            ttl,
            live: AtomicBool::new(true),
            _stop: None,
        })
    }

    /// A cache also told about changes by PostgreSQL notifications: listens on `url` from a
    /// task of the current runtime, and serves nothing until the listener is connected.
    pub(crate) fn listening(url: String, ttl: Duration) -> Arc<VerifyCache> {
        let stop = CancellationToken::new();
        let cache = Arc::new(VerifyCache {
            entries: Mutex::default(),
            ttl,
            live: AtomicBool::new(false),
            _stop: Some(stop.clone().drop_guard()),
        });
        tokio::spawn(listen(Arc::downgrade(&cache), url, stop));
        cache
    }

    /// The kept answer for `key_id`, if it is for `token_id` and still trusted.
    pub(crate) fn get(&self, key_id: &[u8; 32], token_id: &TokenId) -> Option<Known> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let mut entries = self.entries.lock().ok()?;
        let e = entries.map.get(key_id)?;
        if e.at.elapsed() >= self.ttl {
            entries.map.remove(key_id);
            return None;
        }
        (e.token_id == *token_id).then(|| (e.root_key.clone(), e.terms.clone()))
    }

    /// What to hand to [`VerifyCache::keep`] after reading: taken before the read, so an
    /// invalidation during the read is noticed; `None` when nothing may be kept now.
    pub(crate) fn epoch(&self) -> Option<u64> {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        self.entries.lock().ok().map(|e| e.epoch)
    }

    /// Keep what a read begun at `epoch` answered for a known token, unless something was
    /// invalidated since.
    pub(crate) fn keep(
        &self,
        key_id: &[u8; 32],
        token_id: &TokenId,
        known: (&RootKey, &Option<MintedToken>),
        epoch: u64,
    ) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.epoch != epoch {
            return;
        }
        if entries.map.len() >= CAPACITY && !entries.map.contains_key(key_id) {
            entries.map.clear();
        }
        entries.map.insert(
            *key_id,
            Entry {
                token_id: *token_id,
                root_key: known.0.clone(),
                terms: known.1.clone(),
                at: Instant::now(),
            },
        );
    }

    /// Forget `key_id` (revoked or changed).
    pub(crate) fn invalidate(&self, key_id: &[u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.map.remove(key_id);
            entries.epoch = entries.epoch.wrapping_add(1);
        }
    }

    /// Forget everything.
    pub(crate) fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.map.clear();
            entries.epoch = entries.epoch.wrapping_add(1);
        }
    }

    fn set_live(&self, live: bool) {
        if live {
            // Whatever was kept before may have missed notifications.
            self.clear();
            self.live.store(true, Ordering::Release);
        } else {
            self.live.store(false, Ordering::Release);
            self.clear();
        }
    }

    /// Whether kept entries are served now (on PostgreSQL: the listener is connected).
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// Marks the cache untrusted when the listener task ends for any reason (its runtime shut
/// down included).
struct Deaf(Weak<VerifyCache>);

impl Drop for Deaf {
    fn drop(&mut self) {
        if let Some(c) = self.0.upgrade() {
            c.set_live(false);
        }
    }
}

/// Listen for changed root keys until `stop`, connecting again whenever the connection drops.
async fn listen(cache: Weak<VerifyCache>, url: String, stop: CancellationToken) {
    let _deaf = Deaf(cache.clone());
    // A connection error may quote the URL, password included: never logged as it is.
    let redacted = super::engine::Redacted::new(&url);
    loop {
        let connected = tokio::select! {
            _ = stop.cancelled() => return,
            l = connect(&url) => l,
        };
        let mut listener = match connected {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %redacted.scrub(&e), "root key notifications: cannot listen; verifying from the database");
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RECONNECT_DELAY) => continue,
                }
            }
        };
        match cache.upgrade() {
            Some(c) => c.set_live(true),
            None => return,
        }
        info!("root key notifications: listening");
        loop {
            let got = tokio::select! {
                _ = stop.cancelled() => return,
                n = listener.try_recv() => n,
            };
            let Some(c) = cache.upgrade() else { return };
            match got {
                Ok(Some(n)) => match crate::l402::parse_hex32(n.payload()) {
                    Some(key_id) => c.invalidate(&key_id),
                    None => c.clear(),
                },
                Ok(None) | Err(_) => {
                    warn!(
                        "root key notifications: connection lost; verifying from the database until it is back"
                    );
                    c.set_live(false);
                    break;
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<sqlx::postgres::PgListener, sqlx::Error> {
    // Reconnection is ours (above): a lost connection is always seen, as `Ok(None)`.
    let mut l = sqlx::postgres::PgListener::connect(url).await?;
    l.listen(CHANNEL).await?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// A cache, a key id, its token id and what the store answered for them.
    type Setup = (
        Arc<VerifyCache>,
        [u8; 32],
        TokenId,
        RootKey,
        Option<MintedToken>,
    );

    fn setup(ttl: Duration) -> Setup {
        let c = VerifyCache::local(ttl);
        (c, [1u8; 32], TokenId([2u8; 32]), RootKey([3u8; 32]), None)
    }

    #[test]
    fn keeps_until_invalidated() {
        let (c, k, t, key, terms) = setup(Duration::from_secs(60));
        let e = c.epoch().unwrap();
        c.keep(&k, &t, (&key, &terms), e);
        assert_eq!(c.get(&k, &t).map(|h| h.0), Some(key.clone()));
        // Another token id under the same key id is not this entry.
        assert!(c.get(&k, &TokenId([9u8; 32])).is_none());
        c.invalidate(&k);
        assert!(c.get(&k, &t).is_none());
    }

    #[test]
    fn a_read_racing_an_invalidation_is_not_kept() {
        let (c, k, t, key, terms) = setup(Duration::from_secs(60));
        let before = c.epoch().unwrap();
        c.invalidate(&k); // revoked while the read was under way
        c.keep(&k, &t, (&key, &terms), before);
        assert!(c.get(&k, &t).is_none());
    }

    #[test]
    fn entries_expire() {
        let (c, k, t, key, terms) = setup(Duration::ZERO);
        c.keep(&k, &t, (&key, &terms), c.epoch().unwrap());
        assert!(c.get(&k, &t).is_none());
    }

    #[test]
    fn nothing_is_served_or_kept_while_deaf() {
        let (c, k, t, key, terms) = setup(Duration::from_secs(60));
        c.keep(&k, &t, (&key, &terms), c.epoch().unwrap());
        c.set_live(false);
        assert!(c.get(&k, &t).is_none() && c.epoch().is_none());
        c.set_live(true);
        assert!(c.get(&k, &t).is_none(), "forgotten on reconnection");
    }

    #[test]
    fn bounded() {
        let (c, _, _, key, terms) = setup(Duration::from_secs(60));
        for i in 0..=CAPACITY {
            let mut k = [0u8; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            c.keep(&k, &TokenId(k), (&key, &terms), c.epoch().unwrap());
        }
        assert!(c.entries.lock().unwrap().map.len() <= CAPACITY);
    }
}
