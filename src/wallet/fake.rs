//! A scripted Lightning wallet: a first-class backend for tests, not a mock of one.
//!
//! [`FakeNode`] is one fake Lightning node holding any number of wallets (accounts), the way an
//! LNbits or an NWC wallet service holds several: invoices are real BOLT11 signed by the node's
//! key, and a wallet paying another wallet's invoice moves the balance and settles the invoice.
//! What each payment does is scripted per call ([`Outcome`]): paid with its preimage and fee,
//! paid without a preimage or with a wrong one, refused, unreachable, pending until the test
//! settles it, hanging, an unreadable answer, lost on the way, or a success found only later.
//! The node keeps a record of every payment, which `lookup_outgoing` reports as a real backend
//! does, so the pay path's reconciliation runs against it unchanged.
//!
//! It is always compiled (integration tests and benchmarks see the library as any user does, so
//! `cfg(test)` would hide it from them, and a feature would build the library twice) and never
//! selectable from the configuration: [`super::BackendConfig`] has no entry for it, so no user can
//! pay with it by mistake. It reaches no network and holds no secret.

use crate::l402::{PaymentHash, Preimage};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use rand::RngCore;
use tracing::{info, instrument};

use super::toolkit::node;
use super::{
    Balance, CreatedInvoice, IncomingStatus, InvoiceRequest, OutgoingStatus, PaymentResult, Wallet,
    WalletError, WalletInfo,
};
use crate::bolt11::{self, DecodedInvoice, Network, NewInvoice};
use crate::clock::{SharedClock, SystemClock};

/// What a wallet does with the next payment it is asked to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Paid: the answer carries the preimage and this fee.
    Paid { fee_msat: u64 },
    /// Paid, but neither the answer nor the lookup carries a preimage.
    PaidWithoutPreimage { fee_msat: u64 },
    /// Paid, but the answer's preimage is not the invoice's.
    WrongPreimage { fee_msat: u64 },
    /// Refused before any money moved ([`WalletError::Rejected`]); the lookup says failed.
    Failed(String),
    /// The backend could not be reached ([`WalletError::Unavailable`]); nothing is recorded.
    Unreachable,
    /// Under way: [`WalletError::OutcomeUnknown`] now, and in flight until the test calls
    /// [`FakeWallet::settle`] or [`FakeWallet::fail`].
    Pending,
    /// No answer: the call waits out the wallet's timeout ([`FakeWallet::set_timeout`]), then
    /// [`WalletError::OutcomeUnknown`]; in flight like `Pending`.
    Hang,
    /// Paid, but the answer could not be read: [`WalletError::OutcomeUnknown`]; the lookup
    /// shows it paid.
    Unreadable { fee_msat: u64 },
    /// Lost before it reached the node: [`WalletError::OutcomeUnknown`], and no record of it.
    Dropped,
    /// [`WalletError::OutcomeUnknown`] now; the first lookup finds it in flight, later ones paid.
    LateSuccess { fee_msat: u64 },
}

impl Default for Outcome {
    fn default() -> Self {
        Outcome::Paid { fee_msat: 0 }
    }
}

/// Balance of a wallet made by [`FakeWallet::new`]: 10 000 000 sats.
pub const DEFAULT_BALANCE_MSAT: u64 = 10_000_000_000;

/// One fake Lightning node: the wallets on it, their invoices and payments.
#[derive(Debug, Clone)]
pub struct FakeNode(Arc<Node>);

#[derive(Debug)]
struct Node {
    key: SecretKey,
    network: Network,
    clock: SharedClock,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    accounts: Vec<Account>,
    invoices: HashMap<PaymentHash, Invoice>,
    /// Preimages of payable invoices: the node's own, and those a test taught it.
    preimages: HashMap<PaymentHash, Preimage>,
}

#[derive(Debug)]
struct Account {
    balance_msat: u64,
    script: VecDeque<Outcome>,
    /// What happens when the script has run out.
    otherwise: Outcome,
    payments: HashMap<PaymentHash, Payment>,
    pay_calls: usize,
    lookups_fail: bool,
    withholds_preimages: bool,
    timeout: Duration,
}

#[derive(Debug)]
struct Invoice {
    owner: usize,
    expires_at: u64,
    received_msat: Option<u64>,
}

#[derive(Debug, Clone)]
struct Payment {
    amount_msat: u64,
    fee_msat: u64,
    state: PaymentState,
    reveals_preimage: bool,
    /// Lookups left before an in-flight `LateSuccess` completes.
    completes_after_lookups: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PaymentState {
    InFlight,
    Succeeded,
    Failed(String),
}

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut b);
    b
}

impl FakeNode {
    /// A node on `network` whose invoices are dated by `clock`.
    pub fn new(network: Network, clock: SharedClock) -> FakeNode {
        FakeNode(Arc::new(Node {
            key: SecretKey::new(&mut rand::thread_rng()),
            network,
            clock,
            state: Mutex::new(State::default()),
        }))
    }

    /// A regtest node on the system clock.
    pub fn regtest() -> FakeNode {
        FakeNode::new(Network::Regtest, Arc::new(SystemClock))
    }

    /// A new wallet on this node holding `balance_msat`, paying as [`Outcome::default`] until
    /// scripted otherwise.
    pub fn wallet(&self, balance_msat: u64) -> FakeWallet {
        let mut state = self.state();
        state.accounts.push(Account {
            balance_msat,
            script: VecDeque::new(),
            otherwise: Outcome::default(),
            payments: HashMap::new(),
            pay_calls: 0,
            lookups_fail: false,
            withholds_preimages: false,
            timeout: Duration::from_millis(200),
        });
        FakeWallet {
            node: self.clone(),
            account: state.accounts.len() - 1,
        }
    }

    /// The node's public key, hex.
    pub fn node_id(&self) -> String {
        PublicKey::from_secret_key(&Secp256k1::new(), &self.0.key).to_string()
    }

    /// Let this node pay invoices of `preimage` made elsewhere (a real node can pay any
    /// invoice; this one must know how it settles).
    pub fn learn_preimage(&self, preimage: Preimage) {
        self.state()
            .preimages
            .insert(preimage.payment_hash(), preimage);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock leaves consistent data: use it.
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A wallet on a [`FakeNode`]: a cheap handle, cloned to keep one for scripting while the
/// pay path holds another.
#[derive(Debug, Clone)]
pub struct FakeWallet {
    node: FakeNode,
    account: usize,
}

impl Default for FakeWallet {
    fn default() -> Self {
        FakeWallet::new()
    }
}

impl FakeWallet {
    /// A wallet holding [`DEFAULT_BALANCE_MSAT`] on a regtest node of its own.
    pub fn new() -> FakeWallet {
        FakeNode::regtest().wallet(DEFAULT_BALANCE_MSAT)
    }

    /// The node this wallet is on: for other wallets to trade with.
    pub fn node(&self) -> &FakeNode {
        &self.node
    }

    /// The next payments do these, in turn.
    pub fn script(&self, outcomes: impl IntoIterator<Item = Outcome>) {
        self.with(|a| a.script.extend(outcomes));
    }

    /// Every payment after the script has run out does this.
    pub fn always(&self, outcome: Outcome) {
        self.with(|a| a.otherwise = outcome);
    }

    /// Settle an in-flight payment of `payment_hash`, as the network would.
    pub fn settle(&self, payment_hash: &crate::l402::PaymentHash) {
        let mut state = self.node.state();
        let Some(p) = state.accounts[self.account]
            .payments
            .get(payment_hash)
            .cloned()
        else {
            return;
        };
        if p.state == PaymentState::InFlight {
            complete(&mut state, self.account, payment_hash);
        }
    }

    /// Fail an in-flight payment of `payment_hash`: its money comes back.
    pub fn fail(&self, payment_hash: &crate::l402::PaymentHash, why: &str) {
        self.with(|a| {
            if let Some(p) = a.payments.get_mut(payment_hash)
                && p.state == PaymentState::InFlight
            {
                p.state = PaymentState::Failed(why.to_owned());
                a.balance_msat += p.amount_msat + p.fee_msat;
            }
        });
    }

    /// Make lookups fail (an unreachable backend), or work again.
    pub fn fail_lookups(&self, fail: bool) {
        self.with(|a| a.lookups_fail = fail);
    }

    /// Say up front that payments return no preimage (as a wallet configured so does).
    pub fn withhold_preimages(&self, withhold: bool) {
        self.with(|a| a.withholds_preimages = withhold);
    }

    /// How long a [`Outcome::Hang`] waits before giving up; 200 ms unless set.
    pub fn set_timeout(&self, timeout: Duration) {
        self.with(|a| a.timeout = timeout);
    }

    /// How many times `pay_invoice` was called.
    pub fn pay_calls(&self) -> usize {
        self.with(|a| a.pay_calls)
    }

    /// The balance, without going through the `Wallet` trait.
    pub fn balance_msat(&self) -> u64 {
        self.with(|a| a.balance_msat)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Account) -> T) -> T {
        f(&mut self.node.state().accounts[self.account])
    }
}

/// Complete an in-flight or new payment: the payee's invoice (if on this node) is settled and
/// credited. The payer was debited when the payment started.
fn complete(state: &mut State, payer: usize, payment_hash: &crate::l402::PaymentHash) {
    let Some(p) = state.accounts[payer].payments.get_mut(payment_hash) else {
        return;
    };
    p.state = PaymentState::Succeeded;
    p.completes_after_lookups = None;
    let amount = p.amount_msat;
    if let Some(inv) = state.invoices.get_mut(payment_hash)
        && inv.received_msat.is_none()
    {
        inv.received_msat = Some(amount);
        let owner = inv.owner;
        state.accounts[owner].balance_msat += amount;
    }
}

/// What a pay call answers, decided under the lock and acted on after it.
enum Answer {
    Now(Result<PaymentResult, WalletError>),
    AfterTimeout(Duration),
}

impl FakeWallet {
    /// A pay call, as scripted: at the invoice's amount, or `amount_msat` when given.
    async fn pay(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: Option<u64>,
    ) -> Result<PaymentResult, WalletError> {
        let result = match self.decide(invoice, amount_msat) {
            Answer::Now(result) => result,
            Answer::AfterTimeout(timeout) => {
                tokio::time::sleep(timeout).await;
                Err(WalletError::OutcomeUnknown(format!(
                    "no answer from the fake wallet within {} ms (scripted)",
                    timeout.as_millis()
                )))
            }
        };
        match &result {
            Ok(r) => info!(
                fee_msat = r.fee_msat,
                has_preimage = r.preimage.is_some(),
                "paid"
            ),
            Err(e) => info!(error = %e, definite = e.definitely_not_paid(), "not paid"),
        }
        result
    }

    /// `amount_msat`: what is sent to an invoice without an amount (`pay_amountless`); `None`
    /// pays the invoice's own amount.
    fn decide(&self, invoice: &DecodedInvoice, amount_msat: Option<u64>) -> Answer {
        let now = self.node.0.clock.now();
        let hash = invoice.payment_hash;
        let mut state = self.node.state();
        let account = &mut state.accounts[self.account];
        account.pay_calls += 1;
        let outcome = account
            .script
            .pop_front()
            .unwrap_or_else(|| account.otherwise.clone());
        let timeout = account.timeout;
        let unknown = |m: &str| Answer::Now(Err(WalletError::OutcomeUnknown(m.to_owned())));
        let (fee_msat, reveals) = match &outcome {
            Outcome::Unreachable => {
                return Answer::Now(Err(WalletError::Unavailable(
                    "the fake wallet is unreachable (scripted)".into(),
                )));
            }
            Outcome::Dropped => return unknown("no answer (scripted: the request was lost)"),
            Outcome::Failed(why) => {
                let amount = amount_msat.or(invoice.amount_msat).unwrap_or(0);
                account.payments.insert(hash, failed(amount, why));
                return Answer::Now(Err(WalletError::Rejected(why.clone())));
            }
            Outcome::PaidWithoutPreimage { fee_msat } | Outcome::WrongPreimage { fee_msat } => {
                (*fee_msat, false)
            }
            Outcome::Paid { fee_msat }
            | Outcome::Unreadable { fee_msat }
            | Outcome::LateSuccess { fee_msat } => (*fee_msat, true),
            Outcome::Pending | Outcome::Hang => (0, true),
        };
        let amount_msat = amount_msat.or(invoice.amount_msat).unwrap_or(0);
        let refusal = if amount_msat == 0 {
            Some("the fake wallet pays only invoices that state their amount")
        } else if invoice.expires_at() <= now {
            Some("the invoice has expired")
        } else if reveals && !state.preimages.contains_key(&hash) {
            Some("no route: the fake node does not know how this invoice settles")
        } else if state.accounts[self.account].balance_msat < amount_msat + fee_msat {
            Some("insufficient balance")
        } else {
            None
        };
        let account = &mut state.accounts[self.account];
        if let Some(why) = refusal {
            account.payments.insert(hash, failed(amount_msat, why));
            return Answer::Now(Err(WalletError::Rejected(why.into())));
        }
        account.balance_msat -= amount_msat + fee_msat;
        account.payments.insert(
            hash,
            Payment {
                amount_msat,
                fee_msat,
                state: PaymentState::InFlight,
                reveals_preimage: reveals,
                completes_after_lookups: matches!(outcome, Outcome::LateSuccess { .. })
                    .then_some(1),
            },
        );
        let preimage = state.preimages.get(&hash).copied();
        match outcome {
            Outcome::Pending => unknown("the payment is still pending (scripted)"),
            Outcome::Hang => Answer::AfterTimeout(timeout),
            Outcome::LateSuccess { .. } => unknown("no answer in time (scripted)"),
            Outcome::Unreadable { .. } => {
                complete(&mut state, self.account, &hash);
                unknown("the answer could not be read: expected value at line 1 column 1")
            }
            Outcome::WrongPreimage { .. } => {
                complete(&mut state, self.account, &hash);
                Answer::Now(Ok(PaymentResult {
                    preimage: Some(l402_proto::Preimage(random32())),
                    fee_msat,
                }))
            }
            _ => {
                complete(&mut state, self.account, &hash);
                Answer::Now(Ok(PaymentResult {
                    preimage: preimage.filter(|_| reveals),
                    fee_msat,
                }))
            }
        }
    }
}

fn failed(amount_msat: u64, why: &str) -> Payment {
    Payment {
        amount_msat,
        fee_msat: 0,
        state: PaymentState::Failed(why.to_owned()),
        reveals_preimage: false,
        completes_after_lookups: None,
    }
}

#[async_trait]
impl Wallet for FakeWallet {
    async fn info(&self) -> Result<WalletInfo, WalletError> {
        Ok(WalletInfo {
            backend: "fake",
            network: self.node.0.network,
            node_id: Some(self.node.node_id()),
            returns_preimages: !self.with(|a| a.withholds_preimages),
            // Not real bitcoin.
            demo_funds: true,
        })
    }

    async fn balance(&self) -> Result<Balance, WalletError> {
        Ok(Balance {
            msat: self.balance_msat(),
            demo_funds: true,
        })
    }

    #[instrument(skip_all, fields(backend = "fake", amount_msat = request.amount_msat))]
    async fn create_invoice(
        &self,
        request: &InvoiceRequest,
    ) -> Result<CreatedInvoice, WalletError> {
        super::toolkit::node::positive_amount(request.amount_msat)?;
        let preimage = random32();
        let payment_hash = crate::l402::sha256(&preimage);
        let now = self.node.0.clock.now();
        let bolt11 = bolt11::create(
            &self.node.0.key,
            &NewInvoice {
                network: self.node.0.network,
                amount_msat: Some(request.amount_msat),
                description: &request.description,
                payment_hash: l402_proto::PaymentHash(payment_hash),
                payment_secret: random32(),
                timestamp: now,
                expiry_secs: request.expiry_secs,
            },
        )
        .map_err(|e| WalletError::Other(format!("the fake node could not sign: {e}")))?;
        let mut state = self.node.state();
        state.preimages.insert(
            l402_proto::PaymentHash(payment_hash),
            l402_proto::Preimage(preimage),
        );
        state.invoices.insert(
            l402_proto::PaymentHash(payment_hash),
            Invoice {
                owner: self.account,
                expires_at: now.saturating_add(request.expiry_secs),
                received_msat: None,
            },
        );
        Ok(CreatedInvoice {
            bolt11,
            payment_hash: l402_proto::PaymentHash(payment_hash),
            expires_at: now.saturating_add(request.expiry_secs),
        })
    }

    #[instrument(skip_all, fields(backend = "fake", payment_hash = %hex::encode(invoice.payment_hash)))]
    async fn pay_invoice(
        &self,
        invoice: &DecodedInvoice,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        self.pay(invoice, None).await
    }

    fn pays_amountless(&self) -> bool {
        true
    }

    /// Scripted like `pay_invoice`, sending `amount_msat` to an invoice without an amount.
    #[instrument(skip_all, fields(backend = "fake", payment_hash = %hex::encode(invoice.payment_hash), amount_msat))]
    async fn pay_amountless(
        &self,
        invoice: &DecodedInvoice,
        amount_msat: u64,
        _max_fee_msat: u64,
    ) -> Result<PaymentResult, WalletError> {
        let amount = node::amountless_amount("the fake wallet", invoice, amount_msat)?;
        self.pay(invoice, Some(amount)).await
    }

    async fn lookup_incoming(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<IncomingStatus, WalletError> {
        let now = self.node.0.clock.now();
        let state = self.node.state();
        Ok(match state.invoices.get(payment_hash) {
            Some(inv) if inv.owner == self.account => match inv.received_msat {
                Some(amount_msat) => IncomingStatus::Settled { amount_msat },
                None if inv.expires_at <= now => IncomingStatus::Expired,
                None => IncomingStatus::Pending,
            },
            _ => IncomingStatus::NotFound,
        })
    }

    async fn lookup_outgoing(
        &self,
        payment_hash: &crate::l402::PaymentHash,
    ) -> Result<OutgoingStatus, WalletError> {
        let mut state = self.node.state();
        let account = &mut state.accounts[self.account];
        if account.lookups_fail {
            return Err(WalletError::Other(
                "the fake wallet's lookup failed (scripted)".into(),
            ));
        }
        let Some(p) = account.payments.get_mut(payment_hash) else {
            return Ok(OutgoingStatus::NotFound);
        };
        let due = match &mut p.completes_after_lookups {
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        };
        if due {
            complete(&mut state, self.account, payment_hash);
        }
        let preimage = state.preimages.get(payment_hash).copied();
        let Some(p) = state.accounts[self.account].payments.get(payment_hash) else {
            return Ok(OutgoingStatus::NotFound);
        };
        Ok(match &p.state {
            PaymentState::InFlight => OutgoingStatus::InFlight,
            PaymentState::Failed(why) => OutgoingStatus::Failed(why.clone()),
            PaymentState::Succeeded => OutgoingStatus::Succeeded(PaymentResult {
                preimage: preimage.filter(|_| p.reveals_preimage),
                fee_msat: p.fee_msat,
            }),
        })
    }

    fn withholds_preimages(&self) -> bool {
        self.with(|a| a.withholds_preimages)
    }
}

#[cfg(test)]
mod tests;
