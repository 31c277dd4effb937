//! Who is signed in: the session cookie (its token stored only as a hash), CSRF tokens, safe redirects.

use crate::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use pbi_store::Session;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "pbi_session";
/// Before sign-in there is no session to hold a CSRF token: the login form double-submits this cookie.
pub const LOGIN_CSRF_COOKIE: &str = "pbi_login_csrf";

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub fn hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// An HttpOnly, SameSite=Lax cookie for the whole site; `Secure` when served over https.
pub fn set_cookie(name: &str, value: &str, max_age_seconds: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{secure}"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Compares without stopping at the first difference, so timing does not tell how much matched.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where to go after signing in: only one of the server's own paths, never another site.
pub fn safe_next(next: &str) -> &str {
    let own_path = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.contains("://")
        && !next.chars().any(char::is_control);
    if own_path { next } else { "/" }
}

/// A signed-in request. Without a live session, the browser is sent to sign in and come back.
pub struct SignedIn(pub Session);

impl FromRequestParts<Arc<AppState>> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let to_login = || {
            let here = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            Redirect::to(&format!("/login?next={}", form_urlencode(here))).into_response()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else { return Err(to_login()) };
        match state.store.session(&hash(&token), state.clock.unix()).await {
            Ok(Some(session)) => Ok(SignedIn(session)),
            Ok(None) => Err(to_login()),
            Err(error) => {
                tracing::error!(%error, "reading a session");
                Err(crate::pages::server_error())
            }
        }
    }
}

pub fn form_urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_own_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/workspaces/1?tab=tiles"), "/workspaces/1?tab=tiles");
        for bad in ["//evil.example/x", "https://evil.example", "/\\evil.example", "evil", "/x\r\nLocation: //evil"] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn cookies_are_found_and_compared_safely() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; pbi_session=tok; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
