//! Asking the human from the MCP server when a payment is held for approval
//! ([`crate::approval`]): the channel only; approving, denying and paying are the library's.
//!
//! In order, by what the client declares for this request:
//! 1. Form elicitation, on both protocol versions: 2025-11-25 sends `elicitation/create` and
//!    waits (at most until the approval expires; a cancelled call stops waiting);
//!    2026-07-28 answers `input_required` with a sealed `requestState` (the approval's id,
//!    bound to the tool and its arguments, valid until the approval expires) and decides on the
//!    retry. Accept with `approve: true` approves and pays once; decline or cancel deny; no
//!    answer pays nothing (the approval expires). Replaying a retry finds the approval decided.
//! 2. URL elicitation, when the client declares only that: the approval page (served by this
//!    process on loopback, [`crate::web`]) is opened by the client; after `accept` the server
//!    waits for the person's decision on the page, at most until the approval expires.
//! 3. Otherwise the call ends as `approval_required` (id, the page's link, the CLI command),
//!    and a host that renders MCP Apps also gets the one-time secret in the result's `_meta`
//!    for the approval card.
//!
//! Nothing here asks the model: a client without these capabilities is never sent an
//! elicitation it did not declare (rmcp would send one).
//!
//! Kept in one file (~630 lines): the ways of asking (form elicitation on two protocol
//! versions, the page, the link in the result) end in one shared flow (`decided`, `finish`) and
//! one set of answers to the agent; split, each would repeat them.

use std::collections::BTreeMap;
use std::time::Duration;

use rmcp::handler::server::tool::IntoCallToolResult;
use rmcp::handler::server::wrapper::Json;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams,
    ElicitResult, ElicitationAction, ElicitationSchema, InputRequest, InputRequests,
    InputRequiredResult, MetaObject, ProtocolVersion, RequestStateCodec, RequestStateError,
    SealOptions,
};
use rmcp::service::{RequestContext, ServiceError};
use rmcp::{ErrorData, RoleServer};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::L402Server;
use crate::approval::{ApprovalTicket, Channel, Grant};
use crate::budget::sats;
use crate::ops::Failure;
use crate::ops::approve as ops_approve;
use crate::ops::buy::{
    self, FETCH_RETRY, FetchPaidOutput, FetchPaidParams, Held, PAY_RETRY, PayInvoiceOutput,
    PayInvoiceParams,
};
use crate::storage::{Approval, ApprovalStatus, Payment};

/// The key of the form input request.
const APPROVE: &str = "approve";
/// The key of the URL input request.
const PAGE: &str = "page";
/// How often the page's decision is looked for while a client waits on it.
const PAGE_POLL: Duration = Duration::from_millis(250);
/// Where the card finds the approval in a result's `_meta`.
pub(crate) const META_KEY: &str = "io.l402-mcp/approval";
/// The storage setting holding the key `requestState` is sealed with (shared by a fleet).
const STATE_KEY_SETTING: &str = "mcp.request_state_key";

/// The approval pages a server process serves, and their origin (`None`: cannot listen).
pub(crate) type Pages =
    std::sync::Arc<tokio::sync::OnceCell<Option<(std::sync::Arc<crate::web::Web>, String)>>>;

/// A purchase an agent asked for.
pub(crate) enum Purchase {
    Fetch(FetchPaidParams),
    Pay(PayInvoiceParams),
}

enum Bought {
    Fetch(Box<FetchPaidOutput>),
    Pay(PayInvoiceOutput),
}

impl Purchase {
    fn tool(&self) -> &'static str {
        match self {
            Purchase::Fetch(_) => "fetch_paid",
            Purchase::Pay(_) => "pay_invoice",
        }
    }

    fn retry(&self) -> &'static str {
        match self {
            Purchase::Fetch(_) => FETCH_RETRY,
            Purchase::Pay(_) => PAY_RETRY,
        }
    }

    /// What a sealed `requestState` is bound to: this tool with these arguments.
    fn binding(&self, wallet: &str) -> String {
        let args = match self {
            Purchase::Fetch(p) => serde_json::to_vec(p),
            Purchase::Pay(p) => serde_json::to_vec(p),
        }
        .unwrap_or_default();
        format!(
            "l402-mcp tools/call {} {wallet} {}",
            self.tool(),
            hex::encode(crate::l402::sha256(&args))
        )
    }

    async fn run(&self, server: &L402Server) -> Result<Held<Bought>, Failure> {
        Ok(match self {
            Purchase::Fetch(p) => match buy::fetch_paid_or_held(server.fetcher(), p.clone()).await?
            {
                Held::Done(o) => Held::Done(Bought::Fetch(Box::new(o))),
                Held::ForApproval(t) => Held::ForApproval(t),
            },
            Purchase::Pay(p) => match buy::pay_invoice_or_held(server.app(), p.clone()).await? {
                Held::Done(o) => Held::Done(Bought::Pay(o)),
                Held::ForApproval(t) => Held::ForApproval(t),
            },
        })
    }
}

impl Bought {
    /// Say that the approval paid (`p`), not this call's own payment.
    fn paid_by(&mut self, p: &Payment) {
        match self {
            Bought::Fetch(o) => buy::paid_by_approval(o, p),
            Bought::Pay(o) => {
                o.paid = true;
                o.already_paid = false;
            }
        }
    }

    fn into_response(self) -> Result<CallToolResponse, ErrorData> {
        match self {
            Bought::Fetch(o) => Json(*o).into_call_tool_result(),
            Bought::Pay(o) => Json(o).into_call_tool_result(),
        }
    }
}

/// A tool error result with the failure's code and message.
pub(crate) fn failed(f: Failure) -> CallToolResponse {
    CallToolResult::error(vec![ContentBlock::text(f.to_string())]).into()
}

/// What the client can be asked through, for this request.
struct Reach {
    /// 2026-07-28 or later: `input_required`, never a request of our own.
    modern: bool,
    form: bool,
    url: bool,
    apps: bool,
}

fn reach(ctx: &RequestContext<RoleServer>) -> Reach {
    let caps = ctx.client_capabilities();
    let elicitation = caps.as_ref().and_then(|c| c.elicitation.as_ref());
    Reach {
        modern: ctx
            .protocol_version()
            .is_some_and(|v| v >= ProtocolVersion::V_2026_07_28),
        // `{}` means form only.
        form: elicitation.is_some_and(|e| e.form.is_some() || e.url.is_none()),
        url: elicitation.is_some_and(|e| e.url.is_some()),
        apps: super::apps::renders_apps(ctx),
    }
}

/// What the human is asked: amount, payee, what it buys, why.
fn question(a: &Approval) -> String {
    let what = if a.subject.starts_with("invoice:") {
        a.description
            .clone()
            .map_or_else(|| "an invoice".to_owned(), |d| format!("\"{d}\""))
    } else {
        a.subject.clone()
    };
    let why = crate::approval::why(&a.reasons);
    format!(
        "Pay {} to {} for {what}? ({why}; approval {})",
        sats(a.amount.msat()),
        a.host.as_deref().unwrap_or("this invoice's payee"),
        a.id
    )
}

fn form() -> ElicitationSchema {
    ElicitationSchema::builder()
        .required_bool_property(APPROVE, |b| {
            b.description("Tick to approve this payment; leave it unticked or decline to refuse")
        })
        .build_unchecked()
}

fn form_request(a: &Approval) -> ElicitRequestParams {
    ElicitRequestParams::FormElicitationParams {
        meta: None,
        message: question(a),
        requested_schema: form(),
    }
}

/// Accepted with `approve: true`.
fn approved(r: &ElicitResult) -> bool {
    r.action == ElicitationAction::Accept
        && r.content
            .as_ref()
            .and_then(|c| c.get(APPROVE))
            .and_then(Value::as_bool)
            == Some(true)
}

impl L402Server {
    /// Make a purchase; when its payment is held for a human, ask them where the client allows.
    pub(crate) async fn purchase(
        &self,
        ctx: RequestContext<RoleServer>,
        purchase: Purchase,
        state: Option<String>,
        responses: Option<BTreeMap<String, Value>>,
    ) -> Result<CallToolResponse, ErrorData> {
        let work = async {
            if let Some(state) = state {
                return self.resume(&ctx, purchase, &state, responses).await;
            }
            match purchase.run(self).await {
                Ok(Held::Done(b)) => b.into_response(),
                Ok(Held::ForApproval(t)) => self.ask(&ctx, purchase, &t).await,
                Err(f) => Ok(failed(f)),
            }
        };
        self.reporting(&ctx, work).await
    }

    /// The approval page's link, when the client may be sent there (`None`: ask by form).
    async fn by_page(&self, reach: &Reach, id: &str) -> Option<String> {
        if reach.form || !reach.url {
            return None;
        }
        self.page_url(id).await
    }

    async fn ask(
        &self,
        ctx: &RequestContext<RoleServer>,
        purchase: Purchase,
        t: &ApprovalTicket,
    ) -> Result<CallToolResponse, ErrorData> {
        let reach = reach(ctx);
        let a = &t.approval;
        if reach.form || reach.url {
            let page = self.by_page(&reach, &a.id).await;
            if reach.form || page.is_some() {
                if reach.modern {
                    return self.input_required(&purchase, a, page).await;
                }
                return self.elicit(ctx, purchase, a, page).await;
            }
        }
        let page = self.page_url(&a.id).await;
        Ok(self.held(&purchase, t, reach.apps, page.as_deref()))
    }

    /// `approval_required`, with the one-time secret in `_meta` for a host that renders the
    /// approval card (and never for one that does not: it would reach the model).
    fn held(
        &self,
        purchase: &Purchase,
        t: &ApprovalTicket,
        apps: bool,
        page: Option<&str>,
    ) -> CallToolResponse {
        let f = ops_approve::required(t, purchase.retry(), page);
        let mut r = CallToolResult::error(vec![ContentBlock::text(f.to_string())]);
        if apps {
            let mut meta = MetaObject::new();
            let a = &t.approval;
            meta.insert(
                META_KEY.into(),
                json!({
                    "id": a.id,
                    "amount_sats": crate::ops::whole_sats(a.amount.msat()),
                    "host": a.host,
                    "what": question(a),
                    "expires_at": a.expires_at,
                    "secret": t.secret.expose(),
                }),
            );
            r.meta = Some(meta);
        }
        r.into()
    }

    /// 2025-11-25: ask in the client's own dialog (a form, or the page's link) and wait, at
    /// most until the approval expires.
    async fn elicit(
        &self,
        ctx: &RequestContext<RoleServer>,
        purchase: Purchase,
        a: &Approval,
        page: Option<String>,
    ) -> Result<CallToolResponse, ErrorData> {
        let left = a.expires_at.saturating_sub(self.app().clock.now()).max(1);
        let by_page = page.is_some();
        let params = match page {
            Some(url) => ElicitRequestParams::UrlElicitationParams {
                meta: None,
                message: format!("{} Open the approval page to decide.", question(a)),
                url,
                elicitation_id: a.id.clone(),
            },
            None => form_request(a),
        };
        let asked = ctx
            .peer
            .create_elicitation_with_timeout(params, Some(Duration::from_secs(left)));
        let answer = tokio::select! {
            r = asked => r,
            () = ctx.ct.cancelled() => {
                info!(approval = %a.id, "the call was cancelled while the human was asked; nothing paid");
                return Ok(failed(unanswered(a, "the client cancelled the call")));
            }
        };
        match answer {
            Ok(r) if by_page && r.action == ElicitationAction::Accept => {
                self.page_decided(ctx, purchase, a).await
            }
            Ok(r) => {
                self.decided(purchase, &a.id, !by_page && approved(&r))
                    .await
            }
            Err(ServiceError::Timeout { .. }) => Ok(failed(timed_out(a))),
            Err(e) => {
                warn!(approval = %a.id, error = %e, "the client did not answer the approval question");
                Ok(failed(unanswered(
                    a,
                    "the client did not answer the question",
                )))
            }
        }
    }

    /// 2026-07-28: ask through `input_required` (a form, or the page's link); the client
    /// retries with the answer.
    async fn input_required(
        &self,
        purchase: &Purchase,
        a: &Approval,
        page: Option<String>,
    ) -> Result<CallToolResponse, ErrorData> {
        let codec = self.state_codec().await?;
        let left = a.expires_at.saturating_sub(self.app().clock.now()).max(1);
        let binding = purchase.binding(&self.app().wallet_name);
        let state = codec.seal_with(
            a.id.as_bytes(),
            &SealOptions::new()
                .associated_data(binding.as_bytes())
                .ttl(Duration::from_secs(left)),
        );
        let (key, params) = match page {
            Some(url) => (
                PAGE,
                ElicitRequestParams::UrlElicitationParams {
                    meta: None,
                    message: format!("{} Open the approval page to decide.", question(a)),
                    url,
                    // 2026-07-28 has no elicitation id: the retry's requestState is the link.
                    elicitation_id: String::new(),
                },
            ),
            None => (APPROVE, form_request(a)),
        };
        let mut requests = InputRequests::new();
        requests.insert(
            key.into(),
            InputRequest::Elicitation(ElicitRequest::new(params)),
        );
        Ok(InputRequiredResult::new(Some(requests), Some(state)).into())
    }

    /// The retry of an `input_required` round: the answer decides the approval in the state.
    async fn resume(
        &self,
        ctx: &RequestContext<RoleServer>,
        purchase: Purchase,
        state: &str,
        responses: Option<BTreeMap<String, Value>>,
    ) -> Result<CallToolResponse, ErrorData> {
        let codec = self.state_codec().await?;
        let binding = purchase.binding(&self.app().wallet_name);
        let id = match codec.open_with(state, binding.as_bytes()) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(RequestStateError::Expired) => {
                return Ok(failed(Failure::new(
                    "approval_expired",
                    "the approval question expired before it was answered; nothing was paid",
                )));
            }
            Err(e) => {
                return Err(ErrorData::invalid_params(
                    format!("requestState is not one this server gave for this call: {e}"),
                    None,
                ));
            }
        };
        let answer = |key: &str| {
            responses
                .as_ref()
                .and_then(|r| r.get(key))
                .and_then(|v| serde_json::from_value::<ElicitResult>(v.clone()).ok())
        };
        if let Some(r) = answer(APPROVE) {
            return self.decided(purchase, &id, approved(&r)).await;
        }
        let a = match self.app().approvals.get(&id).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return Ok(failed(Failure::new(
                    "approval_unknown",
                    format!("no approval {id}"),
                )));
            }
            Err(e) => return Ok(failed(e.into())),
        };
        match answer(PAGE) {
            Some(r) if r.action == ElicitationAction::Accept => {
                self.page_decided(ctx, purchase, &a).await
            }
            Some(_) => self.decided(purchase, &id, false).await,
            // No answer yet: ask again, if it is still open.
            None if a.status == ApprovalStatus::Pending => {
                let page = self.by_page(&reach(ctx), &a.id).await;
                self.input_required(&purchase, &a, page).await
            }
            None => Ok(failed(not_pending(&a))),
        }
    }

    /// The person was sent to the approval page: wait for their decision there (at most until
    /// the approval expires, or the call is cancelled), then finish the purchase from it.
    async fn page_decided(
        &self,
        ctx: &RequestContext<RoleServer>,
        purchase: Purchase,
        a: &Approval,
    ) -> Result<CallToolResponse, ErrorData> {
        let approvals = &self.app().approvals;
        let decided = loop {
            let now = self.app().clock.now();
            match approvals.get(&a.id).await {
                Ok(Some(x)) if x.status == ApprovalStatus::Pending && x.expires_at > now => {}
                Ok(Some(x)) if x.status == ApprovalStatus::Pending => break None,
                Ok(Some(x)) => break Some(x),
                Ok(None) => break None,
                Err(e) => return Ok(failed(e.into())),
            }
            tokio::select! {
                () = tokio::time::sleep(PAGE_POLL) => {}
                () = ctx.ct.cancelled() => return Ok(failed(unanswered(a, "the client cancelled the call"))),
            }
        };
        let Some(x) = decided else {
            return Ok(failed(timed_out(a)));
        };
        match x.status {
            ApprovalStatus::Paid => self.finish(purchase, &x).await,
            ApprovalStatus::Denied => Ok(failed(declined(&x))),
            _ => Ok(failed(not_pending(&x))),
        }
    }

    /// The human answered in the client's dialog: approve and pay once, then finish the
    /// purchase with what the approval paid for; or deny.
    async fn decided(
        &self,
        purchase: Purchase,
        id: &str,
        yes: bool,
    ) -> Result<CallToolResponse, ErrorData> {
        let approvals = &self.app().approvals;
        let grant = Grant::by(Channel::Elicitation);
        if !yes {
            return Ok(failed(match approvals.deny(id, grant).await {
                Ok(a) => declined(&a),
                Err(e) => e.into(),
            }));
        }
        match approvals.approve(id, grant).await {
            Ok(done) => self.finish(purchase, &done.approval).await,
            Err(e) => Ok(failed(e.into())),
        }
    }

    /// An approval paid: the purchase again, now answered from it (the cached credential, the
    /// paid invoice), its receipt saying what the approval paid.
    async fn finish(
        &self,
        purchase: Purchase,
        a: &Approval,
    ) -> Result<CallToolResponse, ErrorData> {
        let paid = match a.payment_id {
            Some(pid) => self.app().ledger.payment(pid).await.ok().flatten(),
            None => None,
        };
        match purchase.run(self).await {
            Ok(Held::Done(mut b)) => {
                if let Some(p) = &paid {
                    b.paid_by(p);
                }
                b.into_response()
            }
            // Paid, but the resource asks again (a challenge with no credential to keep).
            Ok(Held::ForApproval(t)) => {
                Ok(failed(ops_approve::required(&t, purchase.retry(), None)))
            }
            Err(f) => Ok(failed(Failure::new(
                f.code,
                format!(
                    "the approved payment was made (approval {}, {}), then: {}",
                    a.id,
                    sats(a.amount.msat()),
                    f.message
                ),
            ))),
        }
    }

    /// The loopback approval page of `id`, served by this process from the first time one is
    /// needed (`None` if it cannot listen).
    pub(crate) async fn page_url(&self, id: &str) -> Option<String> {
        let served = self
            .pages
            .get_or_init(|| async {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
                match crate::web::bind(addr).await {
                    Ok((listener, local)) => {
                        let web = crate::web::Web::new(self.app.clone(), "");
                        let serving = web.clone();
                        tokio::spawn(async move {
                            let never = tokio_util::sync::CancellationToken::new();
                            crate::web::serve(serving, listener, never).await;
                        });
                        info!(addr = %local, "approval pages on loopback");
                        Some((web, format!("http://{local}")))
                    }
                    Err(e) => {
                        warn!(error = %e, "no approval page: cannot listen on loopback");
                        None
                    }
                }
            })
            .await;
        served
            .as_ref()
            .map(|(web, origin)| web.approve_url(origin, id))
    }

    /// The key `requestState` is sealed with: kept in the storage, so every instance of a
    /// fleet opens what another sealed.
    async fn state_codec(&self) -> Result<&RequestStateCodec, ErrorData> {
        self.request_state
            .get_or_try_init(|| async {
                let ledger = &self.app().ledger;
                let stored = ledger.setting(STATE_KEY_SETTING).await.map_err(internal)?;
                let key = match stored.and_then(|v| serde_json::from_str::<String>(&v).ok()) {
                    Some(k) => k,
                    None => {
                        // First use: whoever writes last wins, and everyone reads that.
                        let k = hex::encode(rand::random::<[u8; 32]>());
                        let json = serde_json::to_string(&k).map_err(internal)?;
                        ledger
                            .set_setting(STATE_KEY_SETTING, &json, self.app().clock.now())
                            .await
                            .map_err(internal)?;
                        let again = ledger.setting(STATE_KEY_SETTING).await.map_err(internal)?;
                        again
                            .and_then(|v| serde_json::from_str::<String>(&v).ok())
                            .unwrap_or(k)
                    }
                };
                RequestStateCodec::try_new(key.into_bytes()).map_err(internal)
            })
            .await
    }
}

fn timed_out(a: &Approval) -> Failure {
    info!(approval = %a.id, "nobody answered in time; nothing paid");
    Failure::new(
        "approval_timeout",
        format!(
            "nobody answered the approval question for {} (approval {}) before it expired; nothing was paid",
            sats(a.amount.msat()),
            a.id
        ),
    )
}

fn declined(a: &Approval) -> Failure {
    Failure::new(
        "approval_declined",
        format!(
            "the payment of {} to {} was declined (approval {}); nothing was paid",
            sats(a.amount.msat()),
            a.host.as_deref().unwrap_or("this invoice's payee"),
            a.id
        ),
    )
}

fn not_pending(a: &Approval) -> Failure {
    Failure::new(
        "approval_not_pending",
        format!(
            "approval {} was already {}; nothing was paid by this call",
            a.id,
            a.status.as_str()
        ),
    )
}

fn unanswered(a: &Approval, why: &str) -> Failure {
    Failure::new(
        "approval_unanswered",
        format!(
            "{why}; nothing was paid. A person can still approve it with `l402-mcp approve {}` until {} (unix seconds)",
            a.id, a.expires_at
        ),
    )
}

fn internal(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("approval state: {e}"), None)
}
