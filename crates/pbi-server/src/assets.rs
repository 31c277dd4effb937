//! The stylesheet and scripts the pages load, built into the binary and served under `/static/`, and the
//! Content-Security-Policy that lets a page run those and nothing else. No page has inline script, style or
//! handler (the tests check every page), so the policy needs no `'unsafe-inline'` and no hashes: a script an
//! attacker slips into a page through some escaping bug does not run.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

const STYLESHEET: &str = include_str!("../static/pbi-bridge.css");
const PAGE_SCRIPT: &str = include_str!("../static/pbi-bridge.js");
const WORKSPACE_SCRIPT: &str = include_str!("../static/workspace.js");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type))], body).into_response()
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

pub async fn page_script() -> Response {
    asset("text/javascript; charset=utf-8", PAGE_SCRIPT)
}

pub async fn workspace_script() -> Response {
    asset("text/javascript; charset=utf-8", WORKSPACE_SCRIPT)
}

/// The policy for a page whose frames may load from `frame_src` (a CSP source list; `'none'` for every page
/// but a workspace's). Scripts, styles, fetches and images come from this server only; no page of ours may be
/// framed (`frame-ancestors`, as `X-Frame-Options: DENY` says to older browsers); no plugins; no `<base>`
/// that would move relative URLs elsewhere.
///
/// `form-action` is left out on purpose: it also governs where a form's redirect goes, and "Get started"
/// posts to pbi-bridge, which redirects to Entra ID's sign-in, a host of the administrator's choosing.
pub fn content_security_policy(frame_src: &str) -> HeaderValue {
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
         frame-src {frame_src}; frame-ancestors 'none'; object-src 'none'; base-uri 'none'"
    );
    // Origins from a parsed URL are ASCII; should one not be, a policy that allows nothing goes out instead.
    HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"))
}
