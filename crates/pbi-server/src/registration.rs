//! Seed 001's Update Registration and Unregister, on the Power BI configuration: the registration's redirect
//! URLs (one for each host pbi-bridge is reached at; a sign-in uses the one on its own host, so that Entra ID
//! returns the browser where its session cookie is) and unregistering, which says first how many
//! subscriptions it will pause. Shared by the page and the API.

use crate::AppState;
use crate::admin::{self, redirect_url, store_config};
use crate::frame::Message;
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use axum::extract::{Form, State};
use axum::response::Response;
use pbi_store::{Registration, User};
use serde::Deserialize;
use std::sync::Arc;

/// The path pbi-bridge answers Entra ID at, under its base URL.
const CALLBACK_PATH: &str = "/oauth/callback";

/// Reads a redirect URL an administrator adds: an absolute URL of pbi-bridge's callback on one of its hosts,
/// https (http only on this machine, as Entra ID allows), without credentials, query or fragment. Gives it as
/// Entra ID will compare it.
pub(crate) fn parse_redirect_url(field: &str, text: &str) -> Result<String, Problem> {
    let text = text.trim();
    let example = "give https://your-host/oauth/callback (a host pbi-bridge is reached at)";
    let url = url::Url::parse(text).map_err(|e| Problem::invalid(field, format!("'{text}' is not an absolute URL ({e}): {example}.")))?;
    if !pbi_connect::secure_or_local(&url) {
        return Err(Problem::invalid(field, format!("'{text}' must use https (Entra ID allows http for localhost only): {example}.")));
    }
    if !url.username().is_empty() || url.password().is_some() || url.query().is_some() || url.fragment().is_some() {
        return Err(Problem::invalid(field, format!("'{text}' may not hold a user name, a query or a fragment: {example}.")));
    }
    if !url.path().ends_with(CALLBACK_PATH) {
        return Err(Problem::invalid(field, format!("pbi-bridge answers Entra ID at {CALLBACK_PATH}: {example}.")));
    }
    Ok(url.to_string())
}

/// The registration the configuration page edits, or why there is none.
async fn saved_registration(state: &AppState, admin: &User) -> Result<Registration, Problem> {
    if !admin.is_admin {
        return Err(Problem::AdminOnly);
    }
    match admin::active_registration_any(state).await.map_err(Problem::store("registration", "reading the registration"))? {
        Some(registration) => Ok(registration),
        None => Err(Problem::Conflict("Save a Power BI configuration first.".into())),
    }
}

/// Adds a redirect URL; gives it as stored.
pub(crate) async fn add_redirect_url(state: &AppState, admin: &User, text: &str) -> Result<String, Problem> {
    let url = parse_redirect_url("redirectUrl", text)?;
    let registration = saved_registration(state, admin).await?;
    if registration.details.redirect_urls.contains(&url) {
        return Err(Problem::Conflict(format!("{url} is already one of the redirect URLs.")));
    }
    let mut details = registration.details.clone();
    details.redirect_urls.push(url.clone());
    store_config(state, admin, Some(&registration), &details, None).await?;
    Ok(url)
}

/// Removes a redirect URL other than pbi-bridge's own (at its base URL, which its sign-ins need).
pub(crate) async fn remove_redirect_url(state: &AppState, admin: &User, url: &str) -> Result<(), Problem> {
    let registration = saved_registration(state, admin).await?;
    if url == redirect_url(state) {
        return Err(Problem::Conflict(format!(
            "{url} is pbi-bridge's own callback (at its base URL): it stays while pbi-bridge is served there."
        )));
    }
    let mut details = registration.details.clone();
    let before = details.redirect_urls.len();
    details.redirect_urls.retain(|u| u != url);
    if details.redirect_urls.len() == before {
        return Err(Problem::NotFound("redirect URL"));
    }
    store_config(state, admin, Some(&registration), &details, None).await.map(drop)
}

/// How many active subscriptions deliver through the registration: what unregistering it would pause.
pub(crate) async fn subscriptions_to_pause(state: &AppState, registration: &Registration) -> Result<i64, Problem> {
    state
        .store
        .active_subscriptions_of_registration(registration.id)
        .await
        .map_err(Problem::store("subscription", "counting the subscriptions"))
}

/// What unregistering or registering again did.
pub(crate) struct Registered {
    /// Unregistering: the active subscriptions that pause at their next delivery.
    pub pausing: i64,
    /// Registering again: the paused subscriptions that resumed.
    pub resumed: usize,
}

/// Unregisters (`false`: sign-ins stop, and each subscription through it pauses at its next delivery with
/// SSRS's "The delivery extension for this subscription could not be loaded"; nothing is deleted) or
/// registers again (`true`: what it paused resumes and delivers now).
pub(crate) async fn set_registered(state: &AppState, admin: &User, registered: bool) -> Result<Registered, Problem> {
    let registration = saved_registration(state, admin).await?;
    let pausing = if registered { 0 } else { subscriptions_to_pause(state, &registration).await? };
    if registration.details.enabled == registered {
        return Ok(Registered { pausing, resumed: 0 });
    }
    let details = pbi_store::NewRegistration { enabled: registered, ..registration.details.clone() };
    let resumed = store_config(state, admin, Some(&registration), &details, None).await?;
    Ok(Registered { pausing, resumed })
}

/// The sentence after unregistering.
pub(crate) fn unregistered_sentence(pausing: i64) -> String {
    let which = match pausing {
        0 => "No subscription delivers through it.".to_owned(),
        1 => "1 subscription pauses at its next delivery, saying why.".to_owned(),
        n => format!("{n} subscriptions pause at their next delivery, saying why."),
    };
    format!(
        "Unregistered: users can no longer connect, and tiles already pinned stay on their dashboards without updates. {which} Register again to resume them."
    )
}

#[derive(Deserialize)]
pub struct RedirectUrlForm {
    csrf: String,
    url: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// The checks every form of this page makes: an administrator, in their own session.
fn refused(session: &pbi_store::Session, csrf: &str) -> Option<Response> {
    if !session.user.is_admin {
        return Some(admin::forbidden());
    }
    (!session::same(&session.csrf_token, csrf)).then(crate::pages::form_expired)
}

/// Back to the configuration page with the outcome: a refusal the administrator can act on is a message bar.
fn answer(state: &AppState, session: &pbi_store::Session, outcome: Result<String, Problem>) -> Response {
    let message = match outcome {
        Ok(done) => Message::success(done),
        Err(Problem::Invalid { message, .. } | Problem::Conflict(message)) => Message::error(message),
        Err(Problem::NotFound(what)) => Message::error(format!("That {what} is not there any more.")),
        Err(problem) => return problem.page(),
    };
    session::done(state, session, "/admin/powerbi", Flash::message(message))
}

pub async fn add_form(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<RedirectUrlForm>) -> Response {
    if let Some(refusal) = refused(&session, &form.csrf) {
        return refusal;
    }
    let outcome = add_redirect_url(&state, &session.user, &form.url)
        .await
        .map(|url| format!("Added {url}. Add it to the app's Redirect URIs in the Azure portal too (Authentication → Web)."));
    answer(&state, &session, outcome)
}

pub async fn remove_form(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<RedirectUrlForm>) -> Response {
    if let Some(refusal) = refused(&session, &form.csrf) {
        return refusal;
    }
    let outcome = remove_redirect_url(&state, &session.user, &form.url).await.map(|()| format!("Removed {}.", form.url));
    answer(&state, &session, outcome)
}

pub async fn unregister_form(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<CsrfForm>) -> Response {
    if let Some(refusal) = refused(&session, &form.csrf) {
        return refusal;
    }
    let outcome = set_registered(&state, &session.user, false).await.map(|done| unregistered_sentence(done.pausing));
    answer(&state, &session, outcome)
}

pub async fn register_form(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<CsrfForm>) -> Response {
    if let Some(refusal) = refused(&session, &form.csrf) {
        return refusal;
    }
    let outcome = set_registered(&state, &session.user, true)
        .await
        .map(|done| format!("Registered again: users can connect.{}", admin::resumed_sentence(done.resumed)));
    answer(&state, &session, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_redirect_url_is_pbi_bridges_callback_on_https_or_this_machine() {
        let parsed = |text: &str| parse_redirect_url("redirectUrl", text).map_err(|p| p.to_string());
        assert_eq!(parsed(" https://BI.contoso.com:8443/oauth/callback ").as_deref(), Ok("https://bi.contoso.com:8443/oauth/callback"));
        assert_eq!(parsed("https://contoso.com/bi/oauth/callback").as_deref(), Ok("https://contoso.com/bi/oauth/callback"));
        assert_eq!(parsed("http://localhost:8080/oauth/callback").as_deref(), Ok("http://localhost:8080/oauth/callback"));
        assert!(parsed("http://bi.contoso.com/oauth/callback").is_err_and(|e| e.contains("must use https")));
        assert!(parsed("https://bi.contoso.com/callback").is_err_and(|e| e.contains("at /oauth/callback")));
        assert!(parsed("https://bi.contoso.com/oauth/callback?x=1").is_err_and(|e| e.contains("query")));
        assert!(parsed("bi.contoso.com/oauth/callback").is_err_and(|e| e.contains("not an absolute URL")));
    }

    proptest! {
        /// Whatever is typed, the URL is refused naming the field, or it is an https (or local http) URL of
        /// the callback that reads back as itself.
        #[test]
        fn any_text_is_refused_or_a_callback_url_that_reads_back_as_itself(
            scheme in prop::sample::select(vec!["https", "http", "ftp", ""]),
            host in prop::sample::select(vec!["bi.contoso.com", "localhost", "127.0.0.1", "exa mple", "", "[::1]"]),
            port in prop::option::of(0u16..),
            path in "(/[a-z%?#]{0,4}){0,2}(/oauth/callback)?[?#]?[a-z=]{0,3}",
        ) {
            let port = port.map(|p| format!(":{p}")).unwrap_or_default();
            let text = format!("{scheme}://{host}{port}{path}");
            match parse_redirect_url("redirectUrl", &text) {
                Ok(url) => {
                    let read = url::Url::parse(&url).expect("a URL");
                    prop_assert!(read.scheme() == "https" || (read.scheme() == "http" && read.host_str().is_some_and(|h| ["localhost", "127.0.0.1", "[::1]"].contains(&h))));
                    prop_assert!(read.path().ends_with(CALLBACK_PATH) && read.query().is_none() && read.fragment().is_none());
                    prop_assert_eq!(parse_redirect_url("redirectUrl", &url).ok(), Some(url));
                }
                Err(Problem::Invalid { field, .. }) => prop_assert_eq!(field, "redirectUrl"),
                Err(other) => prop_assert!(false, "{other}"),
            }
        }
    }
}
