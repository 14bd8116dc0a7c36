//! Who may see the dashboard: a one-time login link (printed by the command that serves it)
//! becomes a session, kept in this process only, named by an HttpOnly SameSite=Strict cookie;
//! each session has its own CSRF token, required by every form. Approval pages (no login) get
//! a CSRF token derived from the page's approval id and a key of this process.

use std::collections::HashMap;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

/// How long a login link works.
pub const LOGIN_SECS: u64 = 600;
/// How long a session lasts.
pub const SESSION_SECS: u64 = 12 * 3600;

fn random() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Stored under its hash: a dump of this map opens nothing.
fn key(secret: &str) -> String {
    hex::encode(crate::l402::sha256(secret.as_bytes()))
}

/// A logged-in browser.
#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    expires_at: u64,
}

#[derive(Default)]
pub struct Sessions {
    logins: Mutex<HashMap<String, u64>>,
    sessions: Mutex<HashMap<String, Session>>,
    /// Keys the approval pages' CSRF tokens.
    page_key: [u8; 32],
}

impl Sessions {
    pub fn new() -> Sessions {
        Sessions {
            page_key: rand::random(),
            ..Sessions::default()
        }
    }

    /// A new one-time login token.
    pub fn login_token(&self, now: u64) -> String {
        let token = random();
        if let Ok(mut l) = self.logins.lock() {
            l.retain(|_, exp| *exp > now);
            l.insert(key(&token), now + LOGIN_SECS);
        }
        token
    }

    /// Spend a login token: a new session's cookie value, or `None`.
    pub fn log_in(&self, token: &str, now: u64) -> Option<String> {
        let valid = self
            .logins
            .lock()
            .ok()?
            .remove(&key(token))
            .is_some_and(|exp| exp > now);
        if !valid {
            return None;
        }
        let cookie = random();
        let mut s = self.sessions.lock().ok()?;
        s.retain(|_, v| v.expires_at > now);
        s.insert(
            key(&cookie),
            Session {
                csrf: random(),
                expires_at: now + SESSION_SECS,
            },
        );
        Some(cookie)
    }

    /// The session a cookie value names, if live.
    pub fn session(&self, cookie: &str, now: u64) -> Option<Session> {
        self.sessions
            .lock()
            .ok()?
            .get(&key(cookie))
            .filter(|s| s.expires_at > now)
            .cloned()
    }

    /// The CSRF token of the approval page of `id`.
    pub fn page_csrf(&self, id: &str) -> String {
        let mut msg = self.page_key.to_vec();
        msg.extend_from_slice(b"approve page ");
        msg.extend_from_slice(id.as_bytes());
        hex::encode(crate::l402::sha256(&msg))
    }
}

/// Constant-time equality of two tokens.
pub fn same(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_login_link_works_once_and_not_late() {
        let s = Sessions::new();
        let t = s.login_token(100);
        let cookie = s.log_in(&t, 101).unwrap_or_default();
        assert!(s.session(&cookie, 102).is_some());
        assert!(s.log_in(&t, 102).is_none(), "once");
        assert!(s.session("nope", 102).is_none());
        assert!(s.session(&cookie, 101 + SESSION_SECS).is_none(), "expires");
        let late = s.login_token(100);
        assert!(s.log_in(&late, 100 + LOGIN_SECS).is_none());
        assert_ne!(s.page_csrf("a"), s.page_csrf("b"));
        assert_ne!(Sessions::new().page_csrf("a"), s.page_csrf("a"));
    }
}
