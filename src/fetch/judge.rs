//! What a seller's answer says about a credential it was shown: honoured, used up (dropped, to
//! be bought again), or refused after payment (the seller distrusted for a day).

use tracing::{info, warn};

use super::transport::Exchange;
use super::{FetchError, Fetcher};
use crate::l402::PaymentHash;
use crate::payee::Payee;
use crate::storage::CachedToken;

/// What a presented credential's answer says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Judged {
    /// No credential was presented.
    None,
    /// Accepted (any answer below 400).
    Honoured,
    /// Refused after it had been honoured before (used up, expired): dropped, to be bought again.
    Dropped,
    /// Neither accepted nor refused (a 404, a 5xx): kept.
    Kept,
}

/// How long a seller that refused a paid credential is not paid again.
pub(super) const DISTRUST_SECS: u64 = 24 * 3600;

/// The answers that refuse a credential: it was not honoured.
pub(super) fn refuses(status: reqwest::StatusCode) -> bool {
    matches!(status.as_u16(), 401..=403)
}

impl Fetcher {
    /// What the answer to a presented credential says about it: mark it honoured, drop it
    /// when a seller that honoured it refuses it now, or, when the seller never honoured it,
    /// the payment that bought it was refused. `locked`: the caller holds the lock of the
    /// credential's resource.
    pub(super) async fn judge(&self, ex: &Exchange, locked: bool) -> Result<Judged, FetchError> {
        let Some(token) = &ex.token else {
            return Ok(Judged::None);
        };
        let status = ex.response.status();
        if !(refuses(status) || status == reqwest::StatusCode::PAYMENT_REQUIRED) {
            if status.as_u16() < 400 {
                self.tokens
                    .mark_token_honoured(&self.wallet, token, self.clock.now())
                    .await?;
                return Ok(Judged::Honoured);
            }
            return Ok(Judged::Kept);
        }
        // A parallel call may have just used this credential (a single-use token) and not yet
        // written that it was honoured: its resource lock is held until it has.
        let lock = (!locked).then(|| {
            self.lock_for(&format!(
                "{}{}",
                token.scope.origin, token.scope.path_prefix
            ))
        });
        let _held = match &lock {
            Some(l) => Some(l.lock().await),
            None => None,
        };
        let honoured = token.honoured
            || self
                .tokens
                .token_state(&self.wallet, token)
                .await?
                .is_none_or(|honoured| honoured);
        if honoured {
            info!(
                status = status.as_u16(),
                "the server refused a credential it honoured before (used up or expired); dropping it"
            );
            self.tokens
                .drop_token(&self.wallet, &token.scope.origin, &token.scope.path_prefix)
                .await?;
            return Ok(Judged::Dropped);
        }
        let amount_msat = self
            .payer
            .find(&token.payment_hash)
            .await?
            .map_or(0, |p| p.amount.msat());
        let payee = self.payee_of(ex).await;
        Err(self
            .refused_after_payment(
                &token.scope.origin,
                Some(token),
                &payee,
                token.payment_hash,
                amount_msat,
                status,
            )
            .await?)
    }

    /// A seller refused what it was paid for: forget the credential, distrust the seller under
    /// every name of it, and say what was paid.
    pub(super) async fn refused_after_payment(
        &self,
        origin: &str,
        token: Option<&CachedToken>,
        payee: &Payee,
        payment_hash: PaymentHash,
        amount_msat: u64,
        status: reqwest::StatusCode,
    ) -> Result<FetchError, FetchError> {
        let now = self.clock.now();
        warn!(
            payment_hash = %payment_hash,
            status = status.as_u16(),
            payee = %payee.host,
            "the seller refused the credential it was paid for; not paying it again for a day"
        );
        self.tokens
            .distrust(
                &self.wallet,
                payee,
                origin,
                &payment_hash,
                now.saturating_add(DISTRUST_SECS),
                now,
            )
            .await?;
        // Dropped after the distrust is written: a parallel call that finds the credential
        // gone finds the distrust too.
        if let Some(t) = token {
            self.tokens
                .drop_token(&self.wallet, &t.scope.origin, &t.scope.path_prefix)
                .await?;
        }
        Ok(FetchError::RefusedAfterPayment {
            amount_msat,
            payment_hash: payment_hash.to_hex(),
            status: status.as_u16(),
        })
    }
}
