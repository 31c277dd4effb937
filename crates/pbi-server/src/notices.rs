//! What the frame tells people before they ask: a user whose Power BI connection needs them to sign in again
//! sees a banner on every page until they do; administrators see, on every admin page, the application keys
//! that expire within 30 days (or have expired) and the connections that have not worked for 4 days or more.
//! The daily background checks log the same findings (`background`), and `/metrics` counts them.

use crate::background::REPORT_FAILING_AFTER;
use crate::frame::Message;
use pbi_store::{Connection, Store, StoreError, User};

/// When a key warning starts (the configuration page's threshold), and each step after it: 30, 7 and 1 days
/// before the key expires.
pub const KEY_WARNING_DAYS: [i64; 3] = [pbi_auth::SECRET_WARNING_DAYS, 7, 1];

/// An application key in use that expires soon or has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWarning {
    pub registration: String,
    pub expires_at: i64,
    /// The warning step reached (30, 7 or 1 days before), `None` once it has expired.
    pub within_days: Option<i64>,
}

impl KeyWarning {
    /// The warning for a key expiring at `expires_at`, if it is time for one.
    pub fn of(registration: &str, expires_at: i64, now: i64) -> Option<Self> {
        let left = expires_at - now;
        let within_days = if left <= 0 { None } else { Some(*KEY_WARNING_DAYS.iter().rev().find(|days| left <= *days * 86_400)?) };
        Some(Self { registration: registration.to_owned(), expires_at, within_days })
    }

    pub fn expired(&self) -> bool {
        self.within_days.is_none()
    }

    pub fn sentence(&self, now: i64) -> String {
        let on = crate::admin::date(self.expires_at);
        match self.within_days {
            None => format!(
                "The application key of the registration '{}' expired on {on}: Power BI sign-ins and every refresh fail until an administrator creates a new key in the Azure portal (Certificates & secrets) and enters it on the Power BI configuration page.",
                self.registration
            ),
            Some(_) => format!(
                "The application key of the registration '{}' expires {} (on {on}): create a new key in the Azure portal (Certificates & secrets) and enter it on the Power BI configuration page before then.",
                self.registration,
                crate::frame::relative(self.expires_at, now)
            ),
        }
    }
}

/// Each enabled registration's name and when its key in use expires (a registration without a key is left
/// out: that is the configuration page's business, nothing has been set up yet).
pub async fn keys_in_use(store: &Store) -> Result<Vec<(String, i64)>, StoreError> {
    let mut keys = Vec::new();
    for registration in store.registrations(false).await?.iter().filter(|r| r.details.enabled) {
        if let Some(key) = store.secrets(registration.id).await?.first() {
            keys.push((registration.details.name.clone(), key.expires_at));
        }
    }
    Ok(keys)
}

/// The warnings for the keys in use of the enabled registrations.
pub async fn key_warnings(store: &Store, now: i64) -> Result<Vec<KeyWarning>, StoreError> {
    Ok(keys_in_use(store).await?.iter().filter_map(|(name, expires_at)| KeyWarning::of(name, *expires_at, now)).collect())
}

/// Connections (not disconnected) that have not worked for `REPORT_FAILING_AFTER` or longer.
pub async fn failing_connections(store: &Store, now: i64) -> Result<Vec<Connection>, StoreError> {
    let after = i64::try_from(REPORT_FAILING_AFTER.as_secs()).unwrap_or(i64::MAX);
    store.failing_connections(now - after).await
}

fn failing_sentence(failing: &[Connection], now: i64) -> String {
    let named: Vec<String> = failing
        .iter()
        .take(5)
        .map(|c| {
            let since = c.failing_since.map(|s| crate::frame::relative(s, now)).unwrap_or_default();
            let why = c.last_error.as_deref().or(c.status_reason.as_deref()).unwrap_or("unknown error");
            format!("{} (since {since}: {why})", c.account.upn)
        })
        .collect();
    let more = failing.len().saturating_sub(named.len());
    let more = if more > 0 { format!("; and {more} more") } else { String::new() };
    let count = failing.len();
    let (noun, verb) = if count == 1 { ("connection has", "It") } else { ("connections have", "They") };
    format!(
        "{count} Power BI {noun} not worked for 4 days or more: {}{more}. {verb} will keep failing until their users sign in again on My settings, or the cause is fixed.",
        named.join("; ")
    )
}

/// The banners of the page being drawn for `user` at `path`.
pub async fn for_page(store: &Store, user: &User, path: &str, now: i64) -> Result<Vec<Message>, StoreError> {
    let mut messages = Vec::new();
    for connection in store.connections_needing_sign_in(&user.as_owner()).await? {
        let reason = connection.status_reason.as_deref().unwrap_or("the sign-in is no longer valid");
        messages.push(
            Message::warning(format!(
                "Your Power BI connection ({}) needs you to sign in again: {reason}. Until you do, pbi-bridge cannot reach Power BI for you.",
                connection.account.upn
            ))
            .with_link("/settings", "Sign in again on My settings"),
        );
    }
    if user.is_admin && path.starts_with("/admin/") {
        for warning in key_warnings(store, now).await? {
            let message = warning.sentence(now);
            let link = ("/admin/powerbi", "Open the Power BI configuration");
            messages.push(if warning.expired() { Message::error(message) } else { Message::warning(message) }.with_link(link.0, link.1));
        }
        let failing = failing_connections(store, now).await?;
        if !failing.is_empty() {
            messages.push(Message::warning(failing_sentence(&failing, now)).with_link("/admin/jobs", "See the background jobs"));
        }
    }
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    #[test]
    fn a_key_is_announced_30_7_and_1_days_before_and_once_expired() {
        let step = |left: i64| KeyWarning::of("erp", 1_000 * DAY, 1_000 * DAY - left).map(|w| w.within_days);
        assert_eq!(step(31 * DAY), None, "nothing yet");
        assert_eq!(step(30 * DAY), Some(Some(30)));
        assert_eq!(step(8 * DAY), Some(Some(30)));
        assert_eq!(step(7 * DAY), Some(Some(7)));
        assert_eq!(step(DAY + 1), Some(Some(7)));
        assert_eq!(step(DAY), Some(Some(1)));
        assert_eq!(step(1), Some(Some(1)));
        assert_eq!(step(0), Some(None), "expired");
        assert_eq!(step(-5 * DAY), Some(None));
    }

    #[test]
    fn the_sentences_say_when_and_what_to_do() {
        let soon = KeyWarning::of("erp", 10 * DAY, 3 * DAY).expect("a warning");
        assert!(soon.sentence(3 * DAY).contains("expires in 7 days (on 1970-01-11)"), "{}", soon.sentence(3 * DAY));
        let gone = KeyWarning::of("erp", 10 * DAY, 11 * DAY).expect("a warning");
        assert!(gone.sentence(11 * DAY).starts_with("The application key of the registration 'erp' expired on 1970-01-11"));
    }
}
