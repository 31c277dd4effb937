//! What a delivery's failure means for its subscription, and what the user reads about it.
//!
//! Faults are states, not loops: a user who must sign in again, or an integration that was unregistered,
//! pauses the subscription with that reason (it resumes by itself once the cause is gone); a dashboard,
//! dataset or report deleted in Power BI fails the run, and three such runs in a row disable the
//! subscription; a throttled delivery snoozes for the time Power BI asked; an outage is retried with backoff.
//! Messages keep SSRS's frame (`PowerBI Delivery error: dashboard: …, visual: …, error: …`), then say what to do.

use crate::rows::RowError;
use std::time::Duration;

/// Runs in a row that found their Power BI content gone, after which the subscription is disabled.
pub const DISABLE_AFTER_MISSING: u32 = 3;
/// The longest a delivery snoozes at once (the engine's limit); a longer `Retry-After` snoozes again.
pub const MAX_SNOOZE: Duration = Duration::from_secs(3600);

/// SSRS's words for a subscription whose Power BI integration is gone.
pub const EXTENSION_NOT_LOADED: &str = "The delivery extension for this subscription could not be loaded";

/// Why a delivery did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The owner's Power BI connection needs them to sign in again (expired after 90 days idle, consent
    /// revoked, disconnected), with the reason the broker gave.
    NeedsSignIn { reason: String },
    /// pbi-bridge's Power BI integration (the registration the connection uses) was removed or disabled, or
    /// its key expired.
    IntegrationUnavailable { reason: String },
    /// Power BI answered 404 for the pin's dashboard, dataset or report (deleted there): `what` names it.
    Missing { what: String },
    /// Power BI answered 429 with this `Retry-After`.
    Throttled { retry_after: Duration },
    /// Power BI or Entra could not be reached, or answered 5xx.
    Outage { message: String },
    /// The item's source failed: its query, its endpoint, or its missing credentials.
    Source { message: String },
    /// The source's rows do not fit the item's columns.
    Rows(RowError),
    /// Power BI refused the call for another reason (400, 401, 403), with its code and message.
    Refused { message: String },
}

/// What the engine and the subscription do about a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Stop delivering until the cause is gone; the reason is shown on My Subscriptions.
    Pause { reason: String },
    /// This run failed; the next scheduled one tries again, unless `disable`.
    Fail { disable: bool },
    /// Park the delivery for this long (it keeps its progress and spends no attempt).
    Snooze(Duration),
    /// Try again with the engine's backoff.
    Retry,
}

/// What a Power BI answer means for a delivery. `what` names the thing the call was about (`dashboard`,
/// `dataset`, `report`), for a 404. A token the service refused (`TokenExpired`, `InvalidToken`) is an
/// outage-like fault: the broker renews the token on the retry, and a grant that is really gone is reported
/// by the broker itself as sign-in needed, before any call.
pub fn fault_from_power_bi(error: &pbi_powerbi::PowerBiError, what: &str) -> Fault {
    use pbi_powerbi::ErrorKind as K;
    let with_request = |message: String| match &error.request_id {
        Some(id) => format!("{message} (Power BI RequestId {id})"),
        None => message,
    };
    match &error.kind {
        K::NotFound { .. } => Fault::Missing { what: what.to_owned() },
        K::Throttled { retry_after } => Fault::Throttled { retry_after: *retry_after },
        _ if error.is_token_problem() => Fault::Outage { message: with_request(error.kind.to_string()) },
        K::Service { .. } | K::Transport(_) | K::Token(_) => Fault::Outage { message: with_request(error.kind.to_string()) },
        K::Unauthorized { .. } | K::Forbidden { .. } | K::BadRequest { .. } | K::Decode { .. } | K::Invalid(_) | K::Schema { .. } => {
            Fault::Refused { message: with_request(error.kind.to_string()) }
        }
    }
}

/// The decision for `fault`, given how many runs in a row before this one found their content missing.
pub fn decide(fault: &Fault, missing_before: u32) -> Decision {
    match fault {
        Fault::NeedsSignIn { reason } => Decision::Pause { reason: format!("Sign in to Power BI again: {reason}") },
        Fault::IntegrationUnavailable { reason } => Decision::Pause { reason: format!("{EXTENSION_NOT_LOADED}: {reason}") },
        Fault::Missing { .. } => Decision::Fail { disable: missing_before + 1 >= DISABLE_AFTER_MISSING },
        Fault::Throttled { retry_after } => Decision::Snooze((*retry_after).clamp(Duration::from_secs(1), MAX_SNOOZE)),
        Fault::Outage { .. } => Decision::Retry,
        Fault::Source { .. } | Fault::Rows(_) | Fault::Refused { .. } => Decision::Fail { disable: false },
    }
}

/// The error in words, then what to do about it.
pub fn explain(fault: &Fault) -> (String, &'static str) {
    match fault {
        Fault::NeedsSignIn { reason } => (
            format!("Your Power BI sign-in can no longer be used ({reason})."),
            "Sign in again on My settings; paused subscriptions resume by themselves.",
        ),
        Fault::IntegrationUnavailable { reason } => (
            format!("{EXTENSION_NOT_LOADED}: {reason}."),
            "pbi-bridge's Power BI integration is not available: ask an administrator to register it again or renew its key. Tiles already pinned stay on their dashboards, frozen, until deliveries resume.",
        ),
        Fault::Missing { what } => (
            format!("The {what} cannot be found in Power BI: it was deleted, or you no longer have access to it."),
            "Pin the item again, or delete this subscription. After three such runs in a row the subscription is disabled.",
        ),
        Fault::Throttled { retry_after } => (
            format!("Power BI asked to wait {} s before sending more rows.", retry_after.as_secs()),
            "Nothing to do: the delivery waits and goes on by itself.",
        ),
        Fault::Outage { message } => (format!("Power BI could not be reached: {message}."), "Nothing to do: the delivery is retried."),
        Fault::Source { message } => (
            format!("The item's data could not be read: {message}."),
            "Ask an administrator to check the item's data source and its stored credentials.",
        ),
        Fault::Rows(error) => (
            format!("The item's data does not match its columns: {error}."),
            "Ask an administrator to fix the item's query or its columns.",
        ),
        Fault::Refused { message } => {
            (format!("Power BI refused the delivery: {message}."), "Check your access to the workspace and dashboard in Power BI.")
        }
    }
}

/// SSRS's line for My Subscriptions and the log, with pbi-bridge's full message inside it.
pub fn delivery_error(dashboard: &str, visual: &str, fault: &Fault) -> String {
    let (error, to_do) = explain(fault);
    format!("PowerBI Delivery error: dashboard: {dashboard}, visual: {visual}, error: {error} {to_do}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_and_unregistering_pause_missing_content_disables_on_the_third_run() {
        assert!(matches!(decide(&Fault::NeedsSignIn { reason: "consent revoked".into() }, 0), Decision::Pause { .. }));
        let unregistered = decide(&Fault::IntegrationUnavailable { reason: "the registration was removed".into() }, 0);
        assert_eq!(unregistered, Decision::Pause { reason: format!("{EXTENSION_NOT_LOADED}: the registration was removed") });
        let missing = Fault::Missing { what: "dashboard".into() };
        assert_eq!(
            (decide(&missing, 0), decide(&missing, 1), decide(&missing, 2)),
            (Decision::Fail { disable: false }, Decision::Fail { disable: false }, Decision::Fail { disable: true })
        );
        assert_eq!(decide(&Fault::Throttled { retry_after: Duration::from_secs(3392) }, 0), Decision::Snooze(Duration::from_secs(3392)));
        assert_eq!(decide(&Fault::Throttled { retry_after: Duration::from_secs(7200) }, 0), Decision::Snooze(MAX_SNOOZE));
        assert_eq!(decide(&Fault::Throttled { retry_after: Duration::ZERO }, 0), Decision::Snooze(Duration::from_secs(1)));
        assert_eq!(decide(&Fault::Outage { message: "503".into() }, 5), Decision::Retry);
        assert_eq!(decide(&Fault::Source { message: "no stored credentials".into() }, 0), Decision::Fail { disable: false });
    }

    #[test]
    fn power_bi_answers_become_faults() {
        use pbi_powerbi::{ErrorKind as K, PowerBiError};
        let fault = |kind| fault_from_power_bi(&PowerBiError { kind, request_id: Some("r-1".into()) }, "dashboard");
        assert_eq!(
            fault(K::NotFound { code: "PowerBIEntityNotFound".into(), message: String::new() }),
            Fault::Missing { what: "dashboard".into() }
        );
        assert_eq!(fault(K::Throttled { retry_after: Duration::from_secs(42) }), Fault::Throttled { retry_after: Duration::from_secs(42) });
        assert!(
            matches!(fault(K::Service { status: 503, message: "busy".into() }), Fault::Outage { message } if message.contains("RequestId r-1"))
        );
        assert!(
            matches!(fault(K::Forbidden { code: "TokenExpired".into(), message: String::new() }), Fault::Outage { .. }),
            "renewed on the retry"
        );
        assert!(matches!(
            fault(K::Unauthorized { code: "PowerBINotAuthorizedException".into(), message: String::new() }),
            Fault::Refused { .. }
        ));
        assert_eq!(decide(&fault(K::Transport("reset".into())), 0), Decision::Retry);
    }

    #[test]
    fn the_message_keeps_ssrs_frame_and_says_what_to_do() {
        let line = delivery_error(
            "IT Spend Analysis Sample",
            "Chart2",
            &Fault::Source { message: "the data source 'Finance' has no stored credentials".into() },
        );
        assert_eq!(
            line,
            "PowerBI Delivery error: dashboard: IT Spend Analysis Sample, visual: Chart2, error: The item's data could not be read: the data source 'Finance' has no stored credentials. Ask an administrator to check the item's data source and its stored credentials."
        );
        let gone = delivery_error("D", "V", &Fault::IntegrationUnavailable { reason: "the registration was removed".into() });
        assert!(
            gone.contains("error: The delivery extension for this subscription could not be loaded: the registration was removed."),
            "{gone}"
        );
    }
}
