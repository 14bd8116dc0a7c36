//! Calling a priced tool of another MCP server (the `Payment` scheme's MCP transport), over
//! streamable HTTP, under the same rules as `fetch_paid`: the network policy, the caller's cap,
//! the budget, the pay path, one payment at most, and the distrust of a seller that refuses
//! what it was paid for.
//!
//! An unpaid call answered with JSON-RPC error `-32042` (or `-32043`) whose `data.challenges`
//! holds a `lightning`/`charge` challenge is paid, then called again with
//! `_meta["org.paymentauth/credential"]` (the challenge echoed, `request` as an object); the
//! result's `_meta["org.paymentauth/receipt"]` is returned with it. `-32042` is also MCP's
//! URL-elicitation error: its `data` has `elicitations`, not `challenges`, and is never paid.
//! A tool result carrying `_meta["org.paymentauth/payment-required"]` (as mppx clients accept)
//! is read as a challenge too.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResponse, ErrorData, RequestMetaObject};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceError, ServiceExt};
use serde::Serialize;
use serde_json::{Map, Value};
use tracing::{Instrument, info, info_span};

use super::payment::{plan_charge, refuse};
use super::{FetchError, Fetcher};
use crate::l402::mpp::lightning::{self, Payload};
use crate::l402::mpp::{
    MCP_CREDENTIAL_META, MCP_PAYMENT_REQUIRED, MCP_PAYMENT_REQUIRED_META, MCP_RECEIPT_META,
    MCP_VERIFICATION_FAILED, PaymentChallenge, credential,
};
use crate::pay::{PayRequest, Receipt};
use crate::payee::Payee;

/// A tool to call.
#[derive(Debug, Clone)]
pub struct PaidToolCall {
    /// The MCP server's streamable HTTP endpoint, e.g. `https://tools.example.com/mcp`.
    pub server_url: String,
    pub tool: String,
    pub arguments: Map<String, Value>,
    /// The caller's cap on what this call may pay, in msat; the budget applies too.
    pub max_price_msat: Option<u64>,
    pub timeout: Duration,
}

/// A tool's answer, and what was paid for it.
#[derive(Debug, Clone, Serialize)]
pub struct PaidToolOutcome {
    /// The `tools/call` result, as the server sent it (its `_meta` included).
    pub result: Value,
    /// The payment made, when this call paid.
    #[serde(skip)]
    pub paid: Option<Receipt>,
    /// The seller's receipt (`_meta["org.paymentauth/receipt"]`).
    pub payment_receipt: Option<Value>,
    /// The challenge paid.
    pub challenge_id: Option<String>,
}

/// What a first call said.
enum Answer {
    Done(CallToolResponse),
    /// Payment required: the challenges offered.
    Pay(Vec<PaymentChallenge>),
}

fn challenges_of(data: Option<&Value>) -> Option<Vec<PaymentChallenge>> {
    let list = data?.get("challenges")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|c| PaymentChallenge::from_json(c).ok())
            .collect(),
    )
}

fn response_json(r: &CallToolResponse) -> Value {
    match r {
        CallToolResponse::Complete(c) => serde_json::to_value(c),
        CallToolResponse::InputRequired(i) => serde_json::to_value(i),
        CallToolResponse::Task(t) => serde_json::to_value(t),
        _ => Ok(Value::Null),
    }
    .unwrap_or(Value::Null)
}

/// A result that says the credential was refused without keeping the JSON-RPC error (SDK
/// servers turn `-32043` into an `isError` result whose text starts `MCP error -32043`), or
/// that asks for payment again in its `_meta`.
fn refused_in_result(r: &CallToolResponse) -> bool {
    let CallToolResponse::Complete(c) = r else {
        return false;
    };
    let asks_again = c
        .meta
        .as_ref()
        .is_some_and(|m| m.0.contains_key(MCP_PAYMENT_REQUIRED_META));
    asks_again
        || c.is_error == Some(true)
            && serde_json::to_string(&c.content).is_ok_and(|t| {
                t.contains(&format!("MCP error {MCP_VERIFICATION_FAILED}"))
                    || t.contains(&format!("MCP error {MCP_PAYMENT_REQUIRED}"))
            })
}

fn classify(first: Result<CallToolResponse, ServiceError>) -> Result<Answer, FetchError> {
    match first {
        Ok(CallToolResponse::Complete(c)) => {
            let required = c
                .meta
                .as_ref()
                .and_then(|m| m.0.get(MCP_PAYMENT_REQUIRED_META))
                .and_then(|v| challenges_of(Some(v)).or_else(|| challenges_of(v.get("data"))));
            match required {
                Some(list) => Ok(Answer::Pay(list)),
                None => Ok(Answer::Done(CallToolResponse::Complete(c))),
            }
        }
        Ok(other) => Ok(Answer::Done(other)),
        Err(ServiceError::McpError(e))
            if e.code.0 == MCP_PAYMENT_REQUIRED || e.code.0 == MCP_VERIFICATION_FAILED =>
        {
            match challenges_of(e.data.as_ref()) {
                Some(list) => Ok(Answer::Pay(list)),
                None if e
                    .data
                    .as_ref()
                    .and_then(|d| d.get("elicitations"))
                    .is_some() =>
                {
                    Err(refuse(
                        "elicitation_required",
                        format!(
                            "the tool asks the user to open a URL (MCP URL elicitation, {}), which is not a payment",
                            e.code.0
                        ),
                    ))
                }
                None => Err(mcp_error(&e)),
            }
        }
        Err(ServiceError::McpError(e)) => Err(mcp_error(&e)),
        Err(e) => Err(FetchError::Http(format!("MCP call failed: {e}"))),
    }
}

fn mcp_error(e: &ErrorData) -> FetchError {
    FetchError::Http(format!(
        "the MCP server answered error {}: {}",
        e.code.0, e.message
    ))
}

impl Fetcher {
    /// Call `call.tool` on the MCP server at `call.server_url`, paying a `Payment` charge when
    /// asked (within the cap and the budget), and return its result with the receipt.
    pub async fn call_paid_tool(&self, call: &PaidToolCall) -> Result<PaidToolOutcome, FetchError> {
        let url = super::parse_url(&call.server_url)?;
        let span = info_span!("call_paid_tool", url = %url, tool = %call.tool);
        self.call_tool_at(call, url).instrument(span).await
    }

    async fn call_tool_at(
        &self,
        call: &PaidToolCall,
        url: reqwest::Url,
    ) -> Result<PaidToolOutcome, FetchError> {
        self.check_target(&url).await?;
        let transport = StreamableHttpClientTransport::with_client(
            self.http()?.clone(),
            StreamableHttpClientTransportConfig::with_uri(url.as_str()),
        );
        let client = tokio::time::timeout(call.timeout, ().serve(transport))
            .await
            .map_err(|_| FetchError::Http("the MCP server did not answer in time".into()))?
            .map_err(|e| FetchError::Http(format!("cannot connect to the MCP server: {e}")))?;
        let outcome = self.call_with(&client, call, &url).await;
        let _ = client.cancel().await;
        outcome
    }

    async fn call_with(
        &self,
        client: &RunningService<RoleClient, ()>,
        call: &PaidToolCall,
        url: &reqwest::Url,
    ) -> Result<PaidToolOutcome, FetchError> {
        let params =
            CallToolRequestParams::new(call.tool.clone()).with_arguments(call.arguments.clone());
        let once = |p: CallToolRequestParams| async move {
            tokio::time::timeout(call.timeout, client.call_tool_once(p))
                .await
                .map_err(|_| FetchError::Http("the MCP server did not answer in time".into()))
        };
        let challenges = match classify(once(params.clone()).await?)? {
            Answer::Done(r) => {
                return Ok(PaidToolOutcome {
                    result: response_json(&r),
                    paid: None,
                    payment_receipt: None,
                    challenge_id: None,
                });
            }
            Answer::Pay(list) => list,
        };
        let now = self.clock.now();
        let mut first_refusal = None;
        let mut plan = None;
        for c in challenges
            .iter()
            .filter(|c| c.is(lightning::METHOD, lightning::CHARGE))
        {
            match plan_charge(c, call.max_price_msat, now) {
                Ok(p) => {
                    plan = Some(p);
                    break;
                }
                Err(e) => {
                    first_refusal.get_or_insert(e);
                }
            }
        }
        let Some(plan) = plan else {
            return Err(first_refusal.unwrap_or_else(|| {
                refuse(
                    "not_payable",
                    "the tool asks for payment, but offers no lightning charge this wallet pays",
                )
            }));
        };
        let payee = self.payee_for(url).await;
        if let Some(d) = self.tokens.distrusted(&self.wallet, &payee, now).await? {
            return Err(FetchError::SellerDistrusted {
                origin: d.origin,
                until: d.until,
            });
        }
        let resource = super::Resource::of(url);
        let receipt = self
            .payer
            .pay(&PayRequest {
                invoice: &plan.request.invoice,
                max_amount_msat: call.max_price_msat,
                url: Some(url.as_str()),
                payee: Some(&payee),
                expect_payment_hash: Some(plan.invoice.payment_hash),
                needs_preimage: true,
                ..PayRequest::default()
            })
            .await?;
        info!(payment_hash = %receipt.payment_hash, "tool call paid; calling again with the credential");
        let cred = credential::to_mcp_json(
            &plan.challenge,
            &Payload::Charge {
                preimage: receipt.preimage,
            },
        )
        .map_err(|e| FetchError::PaidButFailed {
            amount_msat: receipt.amount_msat,
            fee_msat: receipt.fee_msat,
            payment_hash: receipt.payment_hash.to_hex(),
            next: "a Payment charge is single use: calling the tool again would pay again; the payment hash is the proof of payment to show the seller",
            cause: Box::new(refuse("invalid_challenge", e.to_string())),
        })?;
        let mut meta = Map::new();
        meta.insert(MCP_CREDENTIAL_META.into(), cred);
        let mut paid_params = params;
        paid_params.meta = Some(RequestMetaObject(rmcp::model::MetaObject(meta)));
        let second = match once(paid_params).await {
            Ok(Ok(r)) if !refused_in_result(&r) => r,
            other => {
                let status = match &other {
                    Ok(Err(ServiceError::McpError(e))) => e.code.0,
                    _ => MCP_VERIFICATION_FAILED,
                };
                if let Ok(Err(e)) = &other
                    && !matches!(e, ServiceError::McpError(_))
                {
                    return Err(FetchError::PaidButFailed {
                        amount_msat: receipt.amount_msat,
                        fee_msat: receipt.fee_msat,
                        payment_hash: receipt.payment_hash.to_hex(),
                        next: "a Payment charge is single use: calling the tool again would pay again; the payment hash is the proof of payment to show the seller",
                        cause: Box::new(FetchError::Http(format!("MCP call failed: {e}"))),
                    });
                }
                info!(
                    code = status,
                    "the tool refused the credential it was paid for"
                );
                return Err(self
                    .refused_paid(
                        &resource,
                        &payee,
                        &receipt,
                        reqwest::StatusCode::PAYMENT_REQUIRED,
                    )
                    .await?);
            }
        };
        let payment_receipt = match &second {
            CallToolResponse::Complete(c) => c
                .meta
                .as_ref()
                .and_then(|m| m.0.get(MCP_RECEIPT_META))
                .cloned(),
            _ => None,
        };
        Ok(PaidToolOutcome {
            result: response_json(&second),
            paid: Some(receipt),
            payment_receipt,
            challenge_id: Some(plan.challenge.id),
        })
    }

    /// The payee of an MCP server: its host and the addresses that name resolves to.
    async fn payee_for(&self, url: &reqwest::Url) -> Payee {
        let mut payee = Payee::of_host(url.host_str().unwrap_or_default());
        if let Some(url::Host::Domain(name)) = url.host() {
            let addrs = match self.resolved.get(name) {
                Some(a) => a,
                None => crate::netguard::lookup(name).await.unwrap_or_default(),
            };
            addrs.into_iter().for_each(|a| payee.add_address(a));
        }
        payee
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::ErrorCode;
    use serde_json::json;

    fn err(code: i32, data: Value) -> Result<CallToolResponse, ServiceError> {
        Err(ServiceError::McpError(ErrorData::new(
            ErrorCode(code),
            "x",
            Some(data),
        )))
    }

    #[test]
    fn a_payment_is_told_from_a_url_elicitation_by_its_data() {
        let challenge = json!({"id": "i", "realm": "r", "method": "lightning", "intent": "charge", "request": {"amount": "1"}});
        for code in [MCP_PAYMENT_REQUIRED, MCP_VERIFICATION_FAILED] {
            let pay = classify(err(
                code,
                json!({"httpStatus": 402, "challenges": [challenge]}),
            ));
            assert!(
                matches!(pay, Ok(Answer::Pay(list)) if list.len() == 1),
                "{code}"
            );
        }
        let elicit = classify(err(
            MCP_PAYMENT_REQUIRED,
            json!({"elicitations": [{"mode": "url", "url": "https://example.com/consent"}]}),
        ));
        let Err(FetchError::PaymentChallenge { code, .. }) = elicit else {
            panic!("an elicitation is not a payment");
        };
        assert_eq!(code, "elicitation_required");
        assert!(matches!(
            classify(err(-32000, json!({}))),
            Err(FetchError::Http(_))
        ));
    }

    #[test]
    fn a_paid_call_answered_with_another_payment_request_is_a_refusal() {
        let result = |v: Value| CallToolResponse::Complete(serde_json::from_value(v).unwrap());
        let again = result(json!({
            "content": [{"type": "text", "text": "pay"}],
            "_meta": {MCP_PAYMENT_REQUIRED_META: {"challenges": []}},
        }));
        assert!(refused_in_result(&again));
        let served = result(json!({"content": [{"type": "text", "text": "the data"}]}));
        assert!(!refused_in_result(&served));
    }
}
