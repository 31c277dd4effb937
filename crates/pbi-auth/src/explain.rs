//! Errors people can act on: Entra's AADSTS codes and Power BI's refusals, as seed 000's troubleshooting
//! table words them (what happened, what to do), with the raw code and trace id kept for support.

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explained {
    /// The `AADSTSnnnnn` number, the OAuth `error` when Entra gave no number, or the Power BI error code.
    pub code: Option<String>,
    pub what_happened: String,
    pub what_to_do: String,
    /// Entra's `trace_id` or Power BI's `RequestId`, for a support ticket.
    pub trace_id: Option<String>,
    /// The service's own message (first line), for support.
    pub detail: String,
}

impl std::fmt::Display for Explained {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.what_happened, self.what_to_do)?;
        let parts: Vec<String> = self.code.iter().cloned().chain(self.trace_id.iter().map(|trace| format!("trace id {trace}"))).collect();
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        Ok(())
    }
}

/// The longest service text a message quotes: the rest is in the service's own logs, under the trace id.
const QUOTED_CHARS: usize = 200;

/// A service's words made fit to quote: the first line, printable characters only, cut short. An error on a
/// redirect can be crafted by anyone, so it must not be able to fill a page or break a log line.
fn quoted(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    let mut quoted: String = line.chars().filter(|c| !c.is_control()).take(QUOTED_CHARS).collect();
    if line.chars().filter(|c| !c.is_control()).count() > QUOTED_CHARS {
        quoted.push('…');
    }
    quoted
}

/// Explains an Entra error by its AADSTS number. `context` fills in what the message can name.
pub fn entra(aadsts: Option<u32>, error: &str, detail: &str, trace_id: Option<String>, context: &Context) -> Explained {
    let (what, todo): (String, String) = match aadsts {
        Some(65001) => ("Power BI access has not been granted to pbi-bridge for this account.".into(), "Click \"Get started\" (or \"Sign in again\") and accept the permissions; if the accept button is not offered, ask an administrator to grant consent.".into()),
        Some(90094 | 90095) => (
            "Error when authorizing Power BI: users in this organization may not consent to apps themselves.".into(),
            "An administrator must grant consent for the organization (Azure portal > Enterprise applications > the app > Permissions), or set \"Users can consent to apps accessing company data on their behalf\" to Yes.".into(),
        ),
        Some(65004) => ("You declined the permissions pbi-bridge asked for, so it cannot reach your Power BI content.".into(), "Click \"Get started\" again and accept.".into()),
        Some(7000215) => (
            "Sorry, something went wrong. The authentication process was not successful: the application key is not valid (often the secret's ID was entered instead of its value).".into(),
            format!("Copy the secret's Value from Certificates & secrets in the Azure portal and update the registration{}.", context.registration_suffix()),
        ),
        Some(7000222) => (
            "Sorry, something went wrong. The authentication process was not successful: the application key has expired.".into(),
            format!(
                "The client secret expired{}: create a new one in Certificates & secrets and update the registration{}.",
                context.secret_expired_on.as_ref().map(|d| format!(" on {d}")).unwrap_or_default(),
                context.registration_suffix()
            ),
        ),
        Some(7000218) => ("The registration has no client secret.".into(), format!("Add the application key (client secret) to the registration{}.", context.registration_suffix())),
        Some(700016 | 50194) => (
            "You can't access the application: its Application ID is not known in this tenant, or the app is single-tenant and was asked for through /organizations.".into(),
            "Check the registration's Application (client) ID and tenant against the app registration in the Azure portal.".into(),
        ),
        Some(50011) => (
            "The redirect URL pbi-bridge sent is not registered for the app.".into(),
            format!("Add {} to the app's Redirect URIs (Azure portal > App registrations > Authentication).", context.redirect_url.as_deref().unwrap_or("pbi-bridge's callback URL")),
        ),
        Some(70011 | 28002 | 700022) => (
            "You can't access the application: the permissions pbi-bridge asks for are not valid for Power BI.".into(),
            "Check the registration's scopes against the Power BI Service delegated permissions (e.g. Dashboard.Read.All), then run the registration again.".into(),
        ),
        Some(700082) => ("The Power BI sign-in expired after 90 days without use.".into(), "Sign in again.".into()),
        Some(50173 | 70008 | 70000 | 9002313) => ("The Power BI sign-in was revoked or is no longer valid (the password may have changed, or an administrator revoked it).".into(), "Sign in again.".into()),
        Some(54005) => ("That sign-in link was already used.".into(), "Start again from pbi-bridge.".into()),
        Some(501481) => ("The sign-in could not be completed (its PKCE proof did not match).".into(), "Start again from pbi-bridge.".into()),
        Some(50020 | 50034) => ("The account is not a member of the organization this registration is for.".into(), "Sign in with an account of that organization, or ask its administrator to invite you.".into()),
        Some(50126) => ("The user name or password is wrong.".into(), "Sign in again.".into()),
        Some(90002) => ("The tenant named in the registration does not exist.".into(), "Check the registration's tenant (a GUID or a verified domain).".into()),
        _ if error == "temporarily_unavailable" || error == "server_error" => ("The Power BI service is unavailable.".into(), "You don't have to register again. Try again later.".into()),
        _ => return unexplained(aadsts, error, detail, trace_id),
    };
    Explained { code: aadsts.map(|c| format!("AADSTS{c}")), what_happened: what, what_to_do: todo, trace_id, detail: quoted(detail) }
}

/// An Entra (or other OAuth server's) error this module has no words for: the message quotes what the server
/// said (the first line of `error_description`; its AADSTS number or, without one, the OAuth `error`, and the
/// trace id in brackets) and points the person at exactly that, never at something it does not show.
fn unexplained(aadsts: Option<u32>, error: &str, detail: &str, trace_id: Option<String>) -> Explained {
    let code = aadsts.map(|c| format!("AADSTS{c}")).or_else(|| Some(quoted(error)).filter(|e| !e.is_empty()));
    let detail = quoted(detail);
    let what_happened = if detail.is_empty() {
        "Signing in to Power BI failed.".to_owned()
    } else {
        format!("Signing in to Power BI failed; the sign-in service said: {detail}")
    };
    let what_to_do = match (code.is_some(), trace_id.is_some()) {
        (true, true) => "Try again; if it keeps failing, give your administrator the error and trace id in brackets.",
        (true, false) => "Try again; if it keeps failing, give your administrator the error in brackets.",
        (false, true) => "Try again; if it keeps failing, give your administrator the trace id in brackets.",
        (false, false) => "Try again; if it keeps failing, tell your administrator when it happened.",
    };
    Explained { code, what_happened, what_to_do: what_to_do.into(), trace_id, detail }
}

/// Explains a Power BI refusal by status and code.
pub fn power_bi(status: u16, code: &str, detail: &str, request_id: Option<String>) -> Explained {
    let (what, todo) = match (status, code) {
        (401, _) => (
            "You can't access the application: the permissions granted do not cover this call, or a tenant setting does not allow it.",
            "Check the registration's delegated permissions (and, for a service principal, the Power BI tenant settings and its security group), then sign in again.",
        ),
        (403, "TokenExpired") => {
            ("The Power BI access token expired.", "pbi-bridge renews tokens by itself; if this persists, sign in again.")
        }
        (403, "PowerBINotLicensedException") => {
            ("The account has no Power BI license.", "Assign a Power BI license to the account in the Microsoft 365 admin center.")
        }
        (403, _) => ("Power BI refused the request.", "Check that the account is a member of the workspace, then try again."),
        (404, _) => (
            "The Power BI item was not found, or this account cannot see it.",
            "Check that the item still exists and that your account has access to it.",
        ),
        (429, _) => ("Power BI is throttling requests.", "pbi-bridge waits as Power BI asks; try again shortly."),
        (s, _) if s >= 500 => ("The Power BI service is unavailable.", "You don't have to register again. Try again later."),
        _ => ("Power BI refused the request.", "Check the request; the detail below says what Power BI objected to."),
    };
    Explained {
        code: Some(code.to_owned()),
        what_happened: what.into(),
        what_to_do: todo.into(),
        trace_id: request_id,
        detail: quoted(detail),
    }
}

/// What an explanation may name.
#[derive(Debug, Clone, Default)]
pub struct Context {
    pub registration: Option<String>,
    pub redirect_url: Option<String>,
    /// The secret's expiry date, e.g. `2026-10-01`.
    pub secret_expired_on: Option<String>,
}

impl Context {
    fn registration_suffix(&self) -> String {
        self.registration.as_ref().map(|r| format!(" '{r}' in pbi-bridge")).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_000s_table_and_issue_4s_wording() {
        let context = Context { registration: Some("erp".into()), secret_expired_on: Some("2026-10-01".into()), ..Default::default() };
        let expired = entra(
            Some(7000222),
            "invalid_client",
            "AADSTS7000222: The provided client secret keys are expired.\r\nTrace ID: x",
            Some("t-1".into()),
            &context,
        );
        assert!(
            expired
                .to_string()
                .contains("client secret expired on 2026-10-01: create a new one in Certificates & secrets and update the registration"),
            "{expired}"
        );
        assert_eq!((expired.code.as_deref(), expired.trace_id.as_deref()), (Some("AADSTS7000222"), Some("t-1")));
        assert_eq!(expired.detail, "AADSTS7000222: The provided client secret keys are expired.");
        assert!(entra(Some(90094), "access_denied", "", None, &context).what_happened.starts_with("Error when authorizing Power BI"));
        assert!(entra(None, "temporarily_unavailable", "", None, &context).what_happened.contains("unavailable"));
        assert!(power_bi(401, "PowerBINotAuthorizedException", "", None).what_happened.starts_with("You can't access the application"));
    }

    /// A standards-compliant server (or an Entra answer without `error_codes`) gives only the OAuth `error` and
    /// `error_description`: the message shows both, and promises nothing it does not show.
    #[test]
    fn an_error_without_an_aadsts_number_shows_the_oauth_error_and_its_description() {
        let context = Context::default();
        let plain = entra(None, "invalid_request", "The redirect_uri is malformed.\nMore detail on a second line", None, &context);
        let text = plain.to_string();
        assert!(text.contains("invalid_request") && text.contains("The redirect_uri is malformed."), "{text}");
        assert!(!text.contains("second line"), "only the first line: {text}");
        assert!(!text.contains("trace id"), "no trace id was given, so none is promised: {text}");
        assert_eq!(plain.code.as_deref(), Some("invalid_request"));

        let traced = entra(None, "invalid_scope", "Unknown scope.", Some("t-9".into()), &context).to_string();
        assert!(traced.contains("said: Unknown scope.") && traced.contains("(invalid_scope, trace id t-9)"), "{traced}");

        // An unknown AADSTS number is not explained here either: Entra's own first line says what it is.
        let unknown = entra(Some(12345), "invalid_grant", "AADSTS12345: Something new.\r\nTrace ID: x", Some("t-1".into()), &context);
        assert!(unknown.to_string().contains("AADSTS12345: Something new.") && unknown.to_string().contains("t-1"), "{unknown}");

        // The error came from a redirect anyone can craft: it is cut to one short line of printable text.
        let long = entra(None, "bad\u{7}error", &"x".repeat(1000), None, &context).to_string();
        assert!(!long.contains('\u{7}') && long.len() < 500, "{long}");

        // Nothing at all to show: say what the administrator can use instead.
        let bare = entra(None, "", "", None, &context).to_string();
        assert!(!bare.contains("below") && !bare.contains("()") && bare.contains("when it happened"), "{bare}");
    }
}
