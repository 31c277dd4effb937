//! Who is signed in: the session cookie (its token stored only as a hash), CSRF tokens, safe redirects.

use crate::AppState;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use pbi_store::Session;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

pub const SESSION_COOKIE: &str = "pbi_session";
/// Before sign-in there is no session to hold a CSRF token: the login form double-submits this cookie, whose
/// value the server signed (`LoginCsrf`).
pub const LOGIN_CSRF_COOKIE: &str = "pbi_login_csrf";

/// The login CSRF cookie's name: over https with the `__Host-` prefix, which browsers accept only from this
/// host itself (Secure, `Path=/`, no Domain), so a neighbouring subdomain cannot plant one.
pub fn login_csrf_cookie(secure: bool) -> &'static str {
    if secure { "__Host-pbi_login_csrf" } else { LOGIN_CSRF_COOKIE }
}

type HmacSha256 = Hmac<Sha256>;

/// The login form's CSRF tokens: `nonce.issued.tag`, where `tag` is HMAC-SHA256 under a key made when the
/// server starts. The form double-submits the token (cookie and field), and only a token this server issued
/// within the last hour is accepted, so a pair an attacker made up, however equal its halves, is refused.
/// The key lives only in memory: after a restart, a login form opened before it asks to sign in again.
pub struct LoginCsrf {
    keyed: HmacSha256,
}

impl LoginCsrf {
    /// As long as the cookie that carries the token.
    pub const LIFETIME_SECONDS: i64 = 3600;
    /// Separates these tags from any other use of a key (there is none today).
    const PURPOSE: &'static [u8] = b"pbi-bridge login form\0";

    #[cfg(test)]
    pub fn generate() -> Self {
        let mut key = hmac::digest::Key::<HmacSha256>::default();
        rand::thread_rng().fill_bytes(&mut key);
        Self { keyed: <HmacSha256 as Mac>::new(&key) }
    }

    /// Keyed with the key every instance on the store's database shares, so that a login form one instance
    /// drew is accepted by another behind the same load balancer.
    pub async fn shared(store: &pbi_store::Store) -> pbi_store::Result<Self> {
        use secrecy::ExposeSecret;
        let key = store.shared_key(pbi_store::SharedKey::LoginCsrf).await?;
        let keyed = <HmacSha256 as Mac>::new_from_slice(key.expose_secret())
            .map_err(|_| pbi_store::StoreError::Corrupt("the login form's shared key has no usable length".into()))?;
        Ok(Self { keyed })
    }

    fn tag(&self, payload: &str) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(Self::PURPOSE);
        mac.update(payload.as_bytes());
        mac
    }

    pub fn issue(&self, now: i64) -> String {
        let mut nonce = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut nonce);
        let payload = format!("{}.{now}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce));
        let tag = self.tag(&payload).finalize().into_bytes();
        format!("{payload}.{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag))
    }

    /// Whether the cookie and the field hold the same token, issued by this server less than an hour ago.
    pub fn verify(&self, cookie: &str, field: &str, now: i64) -> bool {
        if cookie.is_empty() || !same(cookie, field) {
            return false;
        }
        let Some((payload, tag)) = cookie.rsplit_once('.') else { return false };
        let Ok(tag) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(tag) else { return false };
        // Constant-time, so timing does not tell how much of a forged tag was right.
        if self.tag(payload).verify_slice(&tag).is_err() {
            return false;
        }
        let issued = payload.split_once('.').and_then(|(_, issued)| issued.parse::<i64>().ok());
        // A minute's grace for a wall clock stepped back after the form was issued.
        issued.is_some_and(|issued| (-60..Self::LIFETIME_SECONDS).contains(&(now - issued)))
    }
}

/// The address a request comes from: its connection's peer, or, when the server is told to trust its proxy
/// (`ServerConfig::trust_forwarded_for`), the last address in `X-Forwarded-For` (the one that proxy saw; any
/// before it are the client's own claims). Sign-in failures are counted per client address.
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<Arc<AppState>> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(peer)| peer.ip());
        let forwarded = if state.trust_forwarded_for { last_forwarded_for(&parts.headers) } else { None };
        // Served without peer addresses (never by `Server::start`): every client shares one count.
        Ok(Self(forwarded.or(peer).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))))
    }
}

fn last_forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?.rsplit(',').next()?.trim();
    last.parse::<IpAddr>().ok().or_else(|| last.parse::<SocketAddr>().ok().map(|address| address.ip()))
}

/// The host (and port) the browser reached pbi-bridge at: `Host`, or, behind a trusted proxy
/// (`ServerConfig::trust_forwarded_for`), the last `X-Forwarded-Host`. It only chooses among the redirect URLs
/// an administrator registered (`pbi_auth::StartOptions::host`), so a forged one chooses nothing else.
pub struct RequestHost(pub Option<String>);

impl FromRequestParts<Arc<AppState>> for RequestHost {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let text = |value: &axum::http::HeaderValue| value.to_str().ok().map(|v| v.rsplit(',').next().unwrap_or(v).trim().to_owned());
        let forwarded =
            if state.trust_forwarded_for { parts.headers.get_all("x-forwarded-host").iter().next_back().and_then(text) } else { None };
        Ok(Self(forwarded.or_else(|| parts.headers.get(header::HOST).and_then(text)).filter(|h| !h.is_empty())))
    }
}

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
            Ok(Some(session)) => {
                // A GET shows the flash of the action before it (Post/Redirect/Get), once.
                let flash = if parts.method == axum::http::Method::GET {
                    state.flashes.take(&session.token_hash, state.clock.unix())
                } else {
                    None
                };
                let viewer = crate::frame::Viewer {
                    name: session.user.display_name.clone(),
                    is_admin: session.user.is_admin,
                    csrf: session.csrf_token.clone(),
                };
                // Only pages show banners; an action redirects to one.
                let notices = if parts.method == axum::http::Method::GET {
                    crate::notices::for_page(&state.store, &session.user, parts.uri.path(), state.clock.unix()).await.unwrap_or_else(
                        |error| {
                            tracing::warn!(%error, "reading what the banners say");
                            Vec::new()
                        },
                    )
                } else {
                    Vec::new()
                };
                crate::frame::signed_in(viewer, flash, notices);
                Ok(SignedIn(session))
            }
            Ok(None) => Err(to_login()),
            Err(error) => {
                tracing::error!(%error, "reading a session");
                Err(crate::pages::server_error())
            }
        }
    }
}

/// What the page after an action says about it (Post/Redirect/Get): the action's handler puts it under the
/// session and redirects (303); the next GET in that session takes it (`SignedIn`) and the frame shows it,
/// once. A reload then repeats nothing and says nothing again.
#[derive(Clone, Default)]
pub struct Flash {
    pub messages: Vec<crate::frame::Message>,
    /// An API token just made: shown on the one following page and never again. It is kept only here, in
    /// this process's memory, for at most `Flashes::LIFETIME_SECONDS` — never in a URL or a cookie.
    pub new_token: Option<secrecy::SecretString>,
    /// The checks of a Validate, listed on the page after it.
    pub checks: Vec<(String, String, String)>,
}

impl Flash {
    pub fn message(message: crate::frame::Message) -> Self {
        Self { messages: vec![message], ..Self::default() }
    }
}

/// The flashes waiting for their page, by session (the session token's hash), in this process's memory.
/// Behind a balancer without sticky sessions a flash may be missed (the action is done all the same).
#[derive(Default)]
pub struct Flashes {
    waiting: std::sync::Mutex<std::collections::HashMap<String, (i64, Flash)>>,
}

impl Flashes {
    /// Long enough for the redirect to be followed, short enough that a new token does not linger.
    pub const LIFETIME_SECONDS: i64 = 120;
    /// At most this many sessions' flashes at once; past it the oldest are dropped.
    const CAP: usize = 10_000;

    pub fn put(&self, session_hash: &str, flash: Flash, now: i64) {
        let Ok(mut waiting) = self.waiting.lock() else { return };
        waiting.retain(|_, (at, _)| now - *at < Self::LIFETIME_SECONDS);
        while waiting.len() >= Self::CAP {
            let Some(oldest) = waiting.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone()) else { break };
            waiting.remove(&oldest);
        }
        waiting.insert(session_hash.to_owned(), (now, flash));
    }

    pub fn take(&self, session_hash: &str, now: i64) -> Option<Flash> {
        let (at, flash) = self.waiting.lock().ok()?.remove(session_hash)?;
        (now - at < Self::LIFETIME_SECONDS).then_some(flash)
    }
}

/// An action's answer: its message kept for the next page, and a 303 to `to`.
pub fn done(state: &AppState, session: &Session, to: &str, flash: Flash) -> Response {
    state.flashes.put(&session.token_hash, flash, state.clock.unix());
    Redirect::to(to).into_response()
}

/// A page anyone may see (the API documentation, a 404): the frame shows the user when a session is there.
pub struct MaybeSignedIn;

impl FromRequestParts<Arc<AppState>> for MaybeSignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        // A missing or expired session is no refusal here: the page is drawn without the user menu.
        let _ = SignedIn::from_request_parts(parts, state).await;
        Ok(Self)
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
    fn only_login_tokens_this_server_issued_recently_are_accepted() {
        let csrf = LoginCsrf::generate();
        let token = csrf.issue(1_000);
        assert!(csrf.verify(&token, &token, 1_000) && csrf.verify(&token, &token, 1_000 + LoginCsrf::LIFETIME_SECONDS - 1));
        assert!(!csrf.verify(&token, &token, 1_000 + LoginCsrf::LIFETIME_SECONDS), "expired");
        assert!(!csrf.verify(&token, "other", 1_000), "the field must match the cookie");
        assert!(!csrf.verify("", "", 1_000));
        assert!(!LoginCsrf::generate().verify(&token, &token, 1_000), "another key");
        let (payload, tag) = token.rsplit_once('.').expect("tag");
        let (nonce, _) = payload.split_once('.').expect("issued");
        let reissued = format!("{nonce}.5000.{tag}");
        assert!(!csrf.verify(&reissued, &reissued, 5_000), "the issue time is signed too");
        for forged in ["forged", "a.b.c", "a.1000.", ".."] {
            assert!(!csrf.verify(forged, forged, 1_000), "{forged}");
        }
    }

    #[test]
    fn forwarded_for_gives_the_address_the_proxy_saw() {
        let mut headers = HeaderMap::new();
        assert_eq!(last_forwarded_for(&headers), None);
        headers.append("x-forwarded-for", HeaderValue::from_static("198.51.100.1, 203.0.113.7"));
        assert_eq!(last_forwarded_for(&headers), Some(IpAddr::from([203, 0, 113, 7])));
        headers.append("x-forwarded-for", HeaderValue::from_static("[2001:db8::1]:4711"));
        assert_eq!(last_forwarded_for(&headers), "2001:db8::1".parse().ok());
        headers.append("x-forwarded-for", HeaderValue::from_static("unknown"));
        assert_eq!(last_forwarded_for(&headers), None, "not an address: the peer's is used");
    }

    #[test]
    fn a_flash_is_taken_once_and_not_after_its_lifetime() {
        let flashes = Flashes::default();
        flashes.put("s1", Flash { new_token: Some("pbb_x".into()), ..Flash::default() }, 100);
        let shown = |f: Flash| f.new_token.map(|t| secrecy::ExposeSecret::expose_secret(&t).to_owned());
        assert!(flashes.take("s2", 100).is_none(), "another session's");
        assert_eq!(flashes.take("s1", 101).and_then(shown).as_deref(), Some("pbb_x"));
        assert!(flashes.take("s1", 101).is_none(), "once");
        flashes.put("s1", Flash::default(), 100);
        assert!(flashes.take("s1", 100 + Flashes::LIFETIME_SECONDS).is_none(), "expired");
    }

    #[test]
    fn cookies_are_found_and_compared_safely() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; pbi_session=tok; b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE).as_deref(), Some("tok"));
        assert!(same("abc", "abc") && !same("abc", "abd") && !same("abc", "ab"));
    }
}
