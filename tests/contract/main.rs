//! Every wallet backend against one contract (suite.rs), and each backend's own
//! tests next to its stand-in (<backend>.rs), in this folder.
//!
//! The stand-ins, and what they are:
//! - LND, Core Lightning, Phoenixd: cannot run here (no registry this machine reaches carries
//!   them), so loopback servers REPLAY the request and response shapes of their public API
//!   documentation, as each module's header says;
//! - LNbits: a loopback replay of LNbits 1.6.2's answers (the cases its FakeWallet funding
//!   source cannot produce: pending, lost answers, crashes), and the real LNbits that
//!   `tools/lnbits/test.sh` starts (those tests are ignored unless it runs them);
//! - NWC: the real NIP-47 protocol over a relay on loopback (nostr-relay-builder, in process),
//!   answered by a wallet service this test runs itself (no NWC wallet service is packaged),
//!   whose Lightning side is the fake wallet, or a real LNbits;
//! - Blink, Strike, OpenNode (and ln.bot): hosted services that cannot be reached here, so
//!   loopback servers REPLAY the request and response shapes of their public API docs and SDKs,
//!   as each module's header says (with what was not verified there); they also play the
//!   rate-limit and selling scenarios, and each is driven end to end through `l402-mcp serve`
//!   and the command line (e2e.rs);
//! - the fake wallet (`wallet::fake`): held to the same contract, since every other test
//!   relies on it behaving as a backend does.
//!
//! `cargo test --test contract scenarios::` runs the contract alone; `scenarios::lnd` one row.
// A failed step in a test is a failed run: unwrapping is fine here (and allowed explicitly for
// when clippy denies it elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../common/mod.rs"]
mod common;
mod sessions;
mod suite;

mod blink;
mod cln;
mod e2e;
mod fake;
mod lnbits;
mod lnbot;
mod lnd;
mod nwc;
mod opennode;
mod phoenixd;
mod strike;

/// The contract: which scenarios each backend's stand-in can play. A backend leaves one out
/// only when it has no such answer: Phoenixd never answers "pending"; a real LNbits on its
/// FakeWallet funding source only pays, refuses and checks keys; the fake wallet has no
/// credential and no wire to carry a 5xx or a body that is not JSON; OpenNode never pays.
mod scenarios {
    use crate::suite::contract_tests;

    contract_tests!(lnd, crate::lnd::Fixture, all);
    contract_tests!(cln, crate::cln::Fixture, all);
    contract_tests!(nwc, crate::nwc::Fixture, all);
    contract_tests!(lnbits, crate::lnbits::Replay, all);
    contract_tests!(
        phoenixd,
        crate::phoenixd::Fixture,
        [
            paid,
            hang,
            failed,
            no_preimage,
            auth_refused,
            server_error,
            not_json
        ]
    );
    contract_tests!(blink, crate::blink::Fixture, hosted);
    contract_tests!(
        opennode,
        crate::opennode::Fixture,
        [auth_refused, rate_limited, sells, refuses_to_buy]
    );
    contract_tests!(strike, crate::strike::Fixture, hosted);
    contract_tests!(lnbot, crate::lnbot::Fixture, hosted);
    contract_tests!(
        fake,
        crate::fake::Fixture,
        [paid, pending_then_settled, hang, failed, no_preimage]
    );
    contract_tests!(
        lnbits_real,
        crate::lnbits::Real,
        [paid, failed, auth_refused],
        ignore = "needs LNbits: tools/lnbits/test.sh"
    );
}

/// The session contract (sessions.rs): the amountless return invoice and the refund paid to
/// it, on each backend whose API has them; the others refuse, naming themselves.
/// `cargo test --test contract session_scenarios::` runs it.
mod session_scenarios {
    use crate::sessions::{refuses_to_create, refuses_to_pay, session_tests};

    /// LNbits 1.6.2 refuses invoices without an amount both ways (its `create_invoice` and
    /// `pay_invoice`: "Amountless invoices not supported").
    #[tokio::test]
    async fn lnbits_refuses_both() {
        refuses_to_create::<crate::lnbits::Replay>("LNbits").await;
        refuses_to_pay::<crate::lnbits::Replay>("LNbits").await;
    }

    /// NIP-47's make_invoice requires an amount: NWC pays refunds, never makes return invoices.
    #[tokio::test]
    async fn nwc_refuses_to_create() {
        refuses_to_create::<crate::nwc::Fixture>("NWC").await;
    }

    /// ln.bot's invoices need an amount, and its payments take one only for addresses.
    #[tokio::test]
    async fn lnbot_refuses_both() {
        refuses_to_create::<crate::lnbot::Fixture>("ln.bot").await;
        refuses_to_pay::<crate::lnbot::Fixture>("ln.bot").await;
    }

    /// An OpenNode charge always has an amount, and OpenNode never pays.
    #[tokio::test]
    async fn opennode_refuses_both() {
        refuses_to_create::<crate::opennode::Fixture>("OpenNode").await;
        refuses_to_pay::<crate::opennode::Fixture>("OpenNode").await;
    }

    session_tests!(
        lnd,
        crate::lnd::Fixture,
        [
            pays_amountless,
            amountless_refused,
            amountless_unknown,
            creates_amountless
        ]
    );
    session_tests!(
        phoenixd,
        crate::phoenixd::Fixture,
        [
            pays_amountless,
            amountless_refused,
            amountless_unknown,
            creates_amountless
        ]
    );
    session_tests!(
        nwc,
        crate::nwc::Fixture,
        [pays_amountless, amountless_refused, amountless_unknown]
    );
    session_tests!(
        fake,
        crate::fake::Fixture,
        [pays_amountless, amountless_refused, amountless_unknown]
    );
    session_tests!(
        blink,
        crate::blink::Fixture,
        [
            pays_amountless,
            amountless_refused,
            amountless_unknown,
            creates_amountless
        ]
    );
    session_tests!(
        strike,
        crate::strike::Fixture,
        [
            pays_amountless,
            amountless_refused,
            amountless_unknown,
            creates_amountless
        ]
    );
    session_tests!(
        cln,
        crate::cln::Fixture,
        [
            pays_amountless,
            amountless_refused,
            amountless_unknown,
            creates_amountless
        ]
    );
}
