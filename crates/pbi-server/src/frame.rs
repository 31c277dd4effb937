//! The frame every page is drawn in (`templates/base.html`): the top bar with the product name, the main
//! areas (the current one marked `aria-current="page"`), the signed-in user and Sign out, and the message
//! bars of the action just done (a flash, `session::Flashes`).
//!
//! What the frame needs is kept per request in a task-local (`scope`, a middleware around every request):
//! the path (which area is current) and, once `session::SignedIn` found the session, who is signed in and the
//! flash taken for this GET. So every page, error pages included, gets the frame without each handler passing
//! it: `problem.page()`, `pages::form_expired()` and the 404 fallback render it too. Outside a request (unit
//! tests) the frame is the one of a page without a session.

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::cell::RefCell;

/// A message bar's kind: its colour and icon, and whether screen readers are told at once (`alert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Success,
    Warning,
    Error,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One message bar.
#[derive(Debug, Clone)]
pub struct Message {
    pub kind: Kind,
    pub text: String,
    /// Where to go to act on it, and the link's words.
    pub link: Option<(String, String)>,
}

impl Message {
    pub fn success(text: impl Into<String>) -> Self {
        Self { kind: Kind::Success, text: text.into(), link: None }
    }

    pub fn warning(text: impl Into<String>) -> Self {
        Self { kind: Kind::Warning, text: text.into(), link: None }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self { kind: Kind::Error, text: text.into(), link: None }
    }

    pub fn with_link(mut self, href: &str, label: &str) -> Self {
        self.link = Some((href.to_owned(), label.to_owned()));
        self
    }

    pub fn kind(&self) -> &'static str {
        self.kind.as_str()
    }

    /// `alert` for an error (read out at once), `status` otherwise.
    pub fn role(&self) -> &'static str {
        if self.kind == Kind::Error { "alert" } else { "status" }
    }
}

/// Who is signed in, as the top bar shows them.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub name: String,
    pub is_admin: bool,
    /// The session's CSRF token, for the Sign out form.
    pub csrf: String,
}

/// One main area in the top bar.
pub struct Area {
    pub key: &'static str,
    pub href: &'static str,
    pub label: &'static str,
    pub current: bool,
}

#[derive(Default)]
struct RequestFrame {
    path: String,
    viewer: Option<Viewer>,
    flash: Option<crate::session::Flash>,
    /// Standing banners (`notices`): shown on every page while what they say holds.
    notices: Vec<Message>,
}

tokio::task_local! {
    static FRAME: RefCell<RequestFrame>;
}

/// What `base.html` draws.
pub struct Frame {
    pub viewer: Option<Viewer>,
    pub home: bool,
    pub areas: Vec<Area>,
    pub notices: Vec<Message>,
    pub messages: Vec<Message>,
    /// A page for an app's end users (the connect page): no pbi-bridge sign-in link.
    pub hosted: bool,
}

/// The area a path belongs to (`None`: the home page, the API documentation, the sign-in page).
fn area_of(path: &str) -> Option<&'static str> {
    let under = |prefix: &str| path == prefix || path.starts_with(&format!("{prefix}/"));
    if under("/workspaces") {
        Some("workspaces")
    } else if under("/settings") || ["/connect", "/disconnect", "/oauth/callback"].contains(&path) {
        Some("settings")
    } else if under("/admin/powerbi") {
        Some("powerbi")
    } else if under("/admin/users") {
        Some("users")
    } else if under("/admin/audit") {
        Some("audit")
    } else if under("/admin/jobs") {
        Some("jobs")
    } else if under("/admin/templates") {
        Some("templates")
    } else if under("/admin/apps") {
        Some("apps")
    } else if under("/admin/items") || under("/admin/data-sources") {
        Some("items")
    } else if under("/subscriptions") || under("/items") {
        Some("subscriptions")
    } else {
        None
    }
}

/// The frame of the page being rendered.
pub fn current() -> Frame {
    let (path, viewer, notices, messages) = FRAME
        .try_with(|f| {
            let f = f.borrow();
            (f.path.clone(), f.viewer.clone(), f.notices.clone(), f.flash.as_ref().map(|flash| flash.messages.clone()).unwrap_or_default())
        })
        .unwrap_or_default();
    let current = area_of(&path);
    let mut areas = vec![
        ("workspaces", "/workspaces", "Workspaces"),
        ("subscriptions", "/subscriptions", "My subscriptions"),
        ("settings", "/settings", "My settings"),
    ];
    if viewer.as_ref().is_some_and(|v| v.is_admin) {
        areas.extend([
            ("powerbi", "/admin/powerbi", "Power BI configuration"),
            ("items", "/admin/items", "Report items"),
            ("templates", "/admin/templates", "Power BI templates"),
            ("apps", "/admin/apps", "Apps"),
            ("users", "/admin/users", "Users"),
            ("audit", "/admin/audit", "Audit log"),
            ("jobs", "/admin/jobs", "Background jobs"),
        ]);
    }
    let areas = if viewer.is_some() {
        areas.into_iter().map(|(key, href, label)| Area { key, href, label, current: current == Some(key) }).collect()
    } else {
        Vec::new()
    };
    let hosted = path.starts_with("/connect/app");
    Frame { home: path == "/", viewer, areas, notices, messages, hosted }
}

/// Called by `session::SignedIn`: the top bar shows this user and their standing banners, and a GET shows (and
/// so uses up) their flash.
pub(crate) fn signed_in(viewer: Viewer, flash: Option<crate::session::Flash>, notices: Vec<Message>) {
    let _ = FRAME.try_with(|f| {
        let mut f = f.borrow_mut();
        f.viewer = Some(viewer);
        f.notices = notices;
        if flash.is_some() {
            f.flash = flash;
        }
    });
}

/// Adds a message bar to the page being rendered (for a page that is itself the answer, not a redirect).
pub(crate) fn show(message: Message) {
    let _ = FRAME.try_with(|f| f.borrow_mut().flash.get_or_insert_with(Default::default).messages.push(message));
}

/// The new API token of the flash being shown (My settings shows it this once).
pub(crate) fn flash_token() -> Option<String> {
    use secrecy::ExposeSecret;
    // Exposed only here, to be written into the one page that shows it.
    FRAME
        .try_with(|f| f.borrow().flash.as_ref().and_then(|flash| flash.new_token.as_ref().map(|t| t.expose_secret().to_owned())))
        .ok()
        .flatten()
}

/// The validation checks of the flash being shown (the Power BI configuration page lists them).
pub(crate) fn flash_checks() -> Vec<(String, String, String)> {
    FRAME.try_with(|f| f.borrow().flash.as_ref().map(|flash| flash.checks.clone()).unwrap_or_default()).unwrap_or_default()
}

/// Whether the page is the API's (JSON answers, no frame).
fn is_api(path: &str) -> bool {
    path == "/api/v1" || path.starts_with("/api/v1/")
}

/// The middleware that gives each request its frame, and gives a refusal that came without a page (an
/// extractor's plain-text rejection, a 405) a framed page instead.
pub async fn scope(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let path = request.uri().path().to_owned();
    let frame = RefCell::new(RequestFrame { path: path.clone(), ..RequestFrame::default() });
    FRAME
        .scope(frame, async move {
            let response = next.run(request).await;
            let status = response.status();
            let is_page = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/html") || t.contains("json"));
            if (status.is_client_error() || status.is_server_error()) && !is_page && !is_api(&path) {
                let mut framed = error_page(status, title_of(status), &plain_words(status));
                for name in [header::RETRY_AFTER, header::CONNECTION, header::ALLOW] {
                    if let Some(value) = response.headers().get(&name) {
                        framed.headers_mut().insert(name, value.clone());
                    }
                }
                return framed;
            }
            response
        })
        .await
}

fn title_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "Page not found",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::METHOD_NOT_ALLOWED => "Not here",
        StatusCode::PAYLOAD_TOO_LARGE => "Check what you entered",
        StatusCode::TOO_MANY_REQUESTS => "Busy",
        s if s.is_client_error() => "Check what you entered",
        _ => "Something went wrong",
    }
}

fn plain_words(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "There is no page at this address. It may have moved, or the link may be wrong.".into(),
        StatusCode::METHOD_NOT_ALLOWED => "This address is not a page to open. Go back and use the page's buttons.".into(),
        StatusCode::PAYLOAD_TOO_LARGE => "What you sent is larger than 64 KiB: send less at a time.".into(),
        StatusCode::TOO_MANY_REQUESTS => "The server is busy: please try again in a moment.".into(),
        s if s.is_client_error() => {
            "Something in the form or the address is not as this page expects. Go back, reload the page and try again.".into()
        }
        _ => "Please try again. If it keeps happening, tell your administrator the time it happened.".into(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
    status: u16,
}

/// An error page in the frame: its title, what happened and what to do, and a way back and home.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    match (ErrorPage { title, message, status: status.as_u16() }).render() {
        Ok(html) => (status, axum::response::Html(html)).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering an error page");
            (StatusCode::INTERNAL_SERVER_ERROR, axum::response::Html("<h1>Something went wrong</h1>")).into_response()
        }
    }
}

/// Unknown addresses: the API's stay JSON (its own fallback); a page address gets the framed 404, with the
/// user menu when a session is there.
/// (`MaybeSignedIn` reads the session and so fills the frame; no session is fine.)
pub async fn not_found(_: crate::session::MaybeSignedIn) -> Response {
    error_page(StatusCode::NOT_FOUND, "Page not found", "There is no page at this address. It may have moved, or the link may be wrong.")
}

/// A point in time for a page: `<time>` with the UTC instant, a readable UTC text that `pbi-bridge.js`
/// rewrites into the reader's own time zone, and the UTC time as its title.
pub struct When {
    pub iso: String,
    pub text: String,
    /// Only a date (no time of day): shown as it is, never moved to another zone.
    pub date_only: bool,
}

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

impl When {
    pub fn at(unix: i64) -> Option<Self> {
        let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
        Some(Self {
            iso: format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second()),
            text: format!("{} {} {}, {:02}:{:02}", t.day(), MONTHS[usize::from(u8::from(t.month())) - 1], t.year(), t.hour(), t.minute()),
            date_only: false,
        })
    }

    pub fn day(unix: i64) -> Option<Self> {
        let t = time::OffsetDateTime::from_unix_timestamp(unix).ok()?;
        Some(Self {
            iso: format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
            text: format!("{} {} {}", t.day(), MONTHS[usize::from(u8::from(t.month())) - 1], t.year()),
            date_only: true,
        })
    }
}

impl std::fmt::Display for When {
    /// HTML: every part is made of digits, month names and punctuation, so nothing needs escaping.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.date_only {
            write!(f, r#"<time datetime="{}">{}</time>"#, self.iso, self.text)
        } else {
            write!(f, r#"<time datetime="{}" title="{} UTC" data-local>{} UTC</time>"#, self.iso, self.text, self.text)
        }
    }
}

/// A `When` as HTML, or a dash for none.
pub fn when_html(when: Option<When>) -> String {
    when.map_or_else(|| "—".to_owned(), |w| w.to_string())
}

/// "in 29 days", "in 3 hours", "2 days ago": how far `unix` is from `now`, roughly, for people.
pub fn relative(unix: i64, now: i64) -> String {
    let seconds = (unix - now).abs();
    let (n, unit) = match seconds {
        s if s < 90 => return if unix >= now { "in a minute".into() } else { "just now".into() },
        s if s < 90 * 60 => ((s + 30) / 60, "minute"),
        s if s < 36 * 3600 => ((s + 1800) / 3600, "hour"),
        s => ((s + 43_200) / 86_400, "day"),
    };
    let plural = if n == 1 { "" } else { "s" };
    if unix >= now { format!("in {n} {unit}{plural}") } else { format!("{n} {unit}{plural} ago") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_people_write_them() {
        let when = When::at(1_796_166_660).expect("a time");
        assert_eq!((when.iso.as_str(), when.text.as_str()), ("2026-12-01T23:11:00Z", "1 Dec 2026, 23:11"));
        assert_eq!(
            when.to_string(),
            r#"<time datetime="2026-12-01T23:11:00Z" title="1 Dec 2026, 23:11 UTC" data-local>1 Dec 2026, 23:11 UTC</time>"#
        );
        assert_eq!(When::day(1_796_166_660).expect("a day").to_string(), r#"<time datetime="2026-12-01">1 Dec 2026</time>"#);
        assert_eq!(relative(29 * 86_400 + 100, 0), "in 29 days");
        assert_eq!(relative(0, 2 * 3600), "2 hours ago");
        assert_eq!(relative(60 * 25, 0), "in 25 minutes");
    }

    #[test]
    fn each_path_marks_its_area() {
        for (path, area) in [
            ("/workspaces", Some("workspaces")),
            ("/workspaces/1/pin", Some("workspaces")),
            ("/settings", Some("settings")),
            ("/settings/tokens", Some("settings")),
            ("/admin/powerbi/validate", Some("powerbi")),
            ("/admin/users/x/password", Some("users")),
            ("/admin/audit", Some("audit")),
            ("/admin/jobs/12", Some("jobs")),
            ("/admin/data-sources/x", Some("items")),
            ("/admin/items/new", Some("items")),
            ("/admin/apps/x/keys", Some("apps")),
            ("/", None),
            ("/workspacesx", None),
        ] {
            assert_eq!(area_of(path), area, "{path}");
        }
    }
}
