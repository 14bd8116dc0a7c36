//! The pages' requests: each reads its input, calls an operation of [`crate::ops`], and
//! answers HTML or a redirect.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::render::{self, Mode};
use super::session::{self, Session};
use super::{COOKIE, Web};
use crate::approval::{ApprovalChange, Channel, Grant};
use crate::budget::BudgetChange;
use crate::ops::Failure;
use crate::ops::approve::{self, ApprovalOutput};
use crate::ops::dashboard::{self, PaymentsShown};
use crate::storage::Status;

type Fields = HashMap<String, String>;

/// The session named by the request's cookie.
fn session(web: &Web, headers: &HeaderMap) -> Option<Session> {
    let cookies = headers.get(header::COOKIE)?.to_str().ok()?;
    let value = cookies
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)?
        .1;
    web.sessions.session(value, web.app.clock.now())
}

fn not_logged_in() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        Html(render::page(
            "Log in",
            "<main><section><h2>Log in</h2><p>Open the one-time login link that <code>l402-mcp dashboard</code> printed in your terminal (a link works once, for ten minutes).</p></section></main>",
        )),
    )
        .into_response()
}

/// `GET /login?token=`: a one-time link becomes a session cookie.
pub async fn login(State(web): State<Arc<Web>>, Query(q): Query<Fields>) -> Response {
    let now = web.app.clock.now();
    let Some(cookie) = q.get("token").and_then(|t| web.sessions.log_in(t, now)) else {
        return not_logged_in();
    };
    let path = if web.base.is_empty() { "/" } else { &web.base };
    let mut resp = Redirect::to(&format!("{}/", web.base)).into_response();
    let set = format!(
        "{COOKIE}={cookie}; HttpOnly; SameSite=Strict; Path={path}; Max-Age={}",
        session::SESSION_SECS
    );
    if let Ok(v) = HeaderValue::from_str(&set) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// `GET /`: the dashboard.
pub async fn dashboard(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Query(q): Query<Fields>,
) -> Response {
    let Some(s) = session(&web, &headers) else {
        return not_logged_in();
    };
    let note = q.get("note").and_then(|n| match n.as_str() {
        "approved" => Some("Approved and paid."),
        "denied" => Some("Denied: nothing was paid."),
        "saved" => Some("Settings saved."),
        _ => None,
    });
    show(&web, &s, &q, note.map(|t| (t, false)), StatusCode::OK).await
}

/// The dashboard, with a note (`true`: an error) above it.
async fn show(
    web: &Web,
    s: &Session,
    q: &Fields,
    note: Option<(&str, bool)>,
    status: StatusCode,
) -> Response {
    let field = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let shown = PaymentsShown {
        direction: crate::ops::wallet::direction(field("direction"))
            .ok()
            .flatten(),
        status: match field("status") {
            Some("pending") => Some(Status::Pending),
            Some("succeeded") => Some(Status::Succeeded),
            Some("failed") => Some(Status::Failed),
            _ => None,
        },
        host: field("host").map(str::to_owned),
        limit: 100,
    };
    match dashboard::dashboard(&web.app, &shown).await {
        Ok(d) => {
            let body = render::dashboard(
                &d,
                &Mode::Page {
                    base: &web.base,
                    csrf: &s.csrf,
                },
            );
            let note = note
                .map(|(t, err)| {
                    format!(
                        "<div class=\"note{}\" id=note>{}</div>",
                        if err { " error" } else { "" },
                        render::esc(t)
                    )
                })
                .unwrap_or_default();
            let body = body.replacen("<main>", &format!("<main>{note}"), 1);
            (
                status,
                Html(render::page(&format!("l402-mcp · {}", d.wallet), &body)),
            )
                .into_response()
        }
        Err(f) => (StatusCode::INTERNAL_SERVER_ERROR, f.to_string()).into_response(),
    }
}

/// A form of a logged-in session with its CSRF token, or the answer refusing it.
fn checked(web: &Web, headers: &HeaderMap, form: &Fields) -> Result<Session, Box<Response>> {
    let s = session(web, headers).ok_or_else(|| Box::new(not_logged_in()))?;
    match form.get("csrf") {
        Some(t) if session::same(t, &s.csrf) => Ok(s),
        _ => Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "refused: the form's CSRF token is missing or wrong",
            )
                .into_response(),
        )),
    }
}

/// The PIN field of a form (wrong ones are counted, and entry locked, by `approval::pin`).
fn pin(form: &Fields) -> Option<&str> {
    form.get("pin")
        .map(String::as_str)
        .filter(|p| !p.is_empty())
}

/// `POST /approvals/{id}` (`decision`: approve or deny) from the dashboard.
pub async fn decide(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let s = match checked(&web, &headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let grant = Grant {
        pin: pin(&form),
        ..Grant::by(Channel::Dashboard)
    };
    let r = match form.get("decision").map(String::as_str).unwrap_or("") {
        "approve" => approve::approve(&web.app, &id, grant)
            .await
            .map(|_| "approved"),
        "deny" => approve::deny(&web.app, &id, grant).await.map(|_| "denied"),
        _ => Err(Failure::invalid("approve or deny")),
    };
    after_form(&web, &s, r).await
}

/// After a form: back to the dashboard with a note, or the dashboard with the error.
async fn after_form(web: &Web, s: &Session, r: Result<&str, Failure>) -> Response {
    match r {
        Ok(note) => Redirect::to(&format!("{}/?note={note}", web.base)).into_response(),
        Err(f) => {
            let note = f.to_string();
            show(
                web,
                s,
                &Fields::new(),
                Some((&note, true)),
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}

/// A number field: `None` when empty.
fn number(form: &Fields, name: &str) -> Result<Option<u64>, Failure> {
    match form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| Failure::invalid(format!("{name}: {v:?} is not a whole number"))),
    }
}

/// `POST /settings`: the budget and the approval policy.
pub async fn settings(
    State(web): State<Arc<Web>>,
    headers: HeaderMap,
    Form(form): Form<Fields>,
) -> Response {
    let s = match checked(&web, &headers, &form) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    let r = async {
        let budget = BudgetChange {
            per_payment_sats: number(&form, "per_payment_sats")?,
            daily_sats: number(&form, "daily_sats")?,
            hourly_sats: Some(number(&form, "hourly_sats")?),
            per_host_daily_sats: Some(number(&form, "per_host_daily_sats")?),
            ..BudgetChange::default()
        };
        let approval = ApprovalChange {
            above_sats: Some(number(&form, "above_sats")?),
            new_host: Some(form.get("new_host").is_some_and(|v| v == "true")),
            timeout_secs: number(&form, "timeout_secs")?,
        };
        dashboard::change_settings(&web.app, &budget, &approval, pin(&form)).await
    }
    .await;
    after_form(&web, &s, r.map(|()| "saved")).await
}

async fn approval(web: &Web, id: &str) -> Result<ApprovalOutput, Response> {
    match web.app.approvals.get(id).await {
        Ok(Some(a)) => Ok(ApprovalOutput::from(&a)),
        Ok(None) => Err((
            StatusCode::NOT_FOUND,
            Html(render::page(
                "Not found",
                "<main><section>No such approval.</section></main>",
            )),
        )
            .into_response()),
        Err(e) => Err((StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()),
    }
}

async fn pin_set(web: &Web) -> bool {
    crate::approval::pin::is_set(web.app.ledger.as_ref(), &web.app.wallet_name)
        .await
        .unwrap_or(true)
}

/// `GET /approve/{id}`: the approval page.
pub async fn approval_page(State(web): State<Arc<Web>>, Path(id): Path<String>) -> Response {
    // Expired questions show as expired.
    let _ = web
        .app
        .approvals
        .list(Some(crate::storage::ApprovalStatus::Pending), 1)
        .await;
    match approval(&web, &id).await {
        Ok(a) => Html(render::approval_page(
            &a,
            &web.base,
            &web.sessions.page_csrf(&a.id),
            pin_set(&web).await,
            None,
        ))
        .into_response(),
        Err(r) => r,
    }
}

/// `POST /approve/{id}`: the page's decision.
pub async fn approval_decide(
    State(web): State<Arc<Web>>,
    Path(id): Path<String>,
    Form(form): Form<Fields>,
) -> Response {
    let csrf = web.sessions.page_csrf(&id);
    if !form.get("csrf").is_some_and(|t| session::same(t, &csrf)) {
        return (
            StatusCode::FORBIDDEN,
            "refused: the form's CSRF token is missing or wrong",
        )
            .into_response();
    }
    let grant = Grant {
        pin: pin(&form),
        ..Grant::by(Channel::Page)
    };
    let r = if form.get("decision").map(String::as_str) == Some("approve") {
        approve::approve(&web.app, &id, grant).await
    } else {
        approve::deny(&web.app, &id, grant).await
    }
    .map(|_| ());
    let a = match approval(&web, &id).await {
        Ok(a) => a,
        Err(resp) => return resp,
    };
    let (status, note) = match &r {
        Ok(()) => (StatusCode::OK, None),
        Err(f) => (StatusCode::BAD_REQUEST, Some(f.to_string())),
    };
    (
        status,
        Html(render::approval_page(
            &a,
            &web.base,
            &csrf,
            pin_set(&web).await,
            note.as_deref(),
        )),
    )
        .into_response()
}
