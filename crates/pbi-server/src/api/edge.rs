//! The API's edges: who is calling (API token or session with CSRF), bodies and path ids parsed with the
//! field at fault named, and problems said as `{"error": {"code", "message", "field"}}`.

use crate::AppState;
use crate::problem::Problem;
use crate::session::{self, SESSION_COOKIE};
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pbi_store::User;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use std::sync::Arc;
use utoipa::{IntoResponses, ToSchema};

/// The header a page's script sends with the session cookie on requests that change something.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A problem as the API says it: its status and `{"error": {"code", "message", "field"}}`.
pub struct ApiError(pub Problem);

impl From<Problem> for ApiError {
    fn from(problem: Problem) -> Self {
        Self(problem)
    }
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable name of the kind of problem: not_found, invalid_input, unauthenticated, forbidden, admin_only,
    /// csrf, conflict, not_configured, not_connected, needs_sign_in, power_bi, unavailable, busy, internal.
    code: String,
    /// What went wrong and what to do, in words for a person.
    message: String,
    /// The input field at fault, for invalid_input.
    field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail { code: self.0.code().into(), message: self.0.to_string(), field: self.0.field().map(str::to_owned) },
        };
        let mut response = self.0.with_retry_after((self.0.status(), axum::Json(body)).into_response());
        if let Problem::Unauthenticated(_) = self.0 {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"pbi-bridge\""));
        }
        response
    }
}

/// The refusals any operation may answer with.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes responses for the OpenAPI document; built by `ApiError`.
pub(super) enum Refusals {
    /// The input is not valid: `field` names what to correct.
    #[response(status = 400)]
    Invalid(ErrorBody),
    /// No valid API token or session.
    #[response(status = 401)]
    Unauthenticated(ErrorBody),
    /// Not allowed: an administrator's operation, or a missing CSRF header with a session cookie.
    #[response(status = 403)]
    Forbidden(ErrorBody),
    /// No such thing among the caller's own (another user's reads the same).
    #[response(status = 404)]
    NotFound(ErrorBody),
    /// The body is too large: 64 KiB at most (64 MiB for an item's rows).
    #[response(status = 413)]
    TooLarge(ErrorBody),
    /// A fault of the server, logged with a request id.
    #[response(status = 500)]
    Internal(ErrorBody),
}

/// The refusals of operations that call Power BI as the user.
#[derive(IntoResponses)]
#[allow(dead_code)] // Describes responses for the OpenAPI document; built by `ApiError`.
pub(super) enum PowerBiRefusals {
    /// Power BI is not configured, the caller has not connected, or must sign in again (`code` says which).
    #[response(status = 409)]
    NotReady(ErrorBody),
    /// Power BI or Entra ID refused or failed; the message is the troubleshooting advice.
    #[response(status = 502)]
    PowerBi(ErrorBody),
}

/// A JSON body; a body that does not parse is refused with the field at fault.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if essence != "application/json" && !essence.ends_with("+json") {
            return Err(ApiError(Problem::invalid("Content-Type", "Send the body as JSON, with Content-Type: application/json.")));
        }
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|e| match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError(Problem::TooLarge),
            _ => ApiError(Problem::invalid("body", e.body_text())),
        })?;
        parse_object(&bytes).map(Self).map_err(ApiError)
    }
}

/// A JSON object into `T`. Anything else (an array, which serde would read field by field, a number, trailing
/// text) is refused, naming the field at fault where there is one.
fn parse_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::invalid("body", "Send a JSON object: {\"name\": value, …}."));
    }
    let mut reader = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut reader).map_err(|e| at_fault(&e, "body"))?;
    reader.end().map_err(|e| Problem::invalid("body", format!("{e}: send one JSON object and nothing after it.")))?;
    Ok(value)
}

/// A serde error as a refusal naming its field (or `whole`: the body, the query, when none can be named).
fn at_fault<E: std::fmt::Display>(error: &serde_path_to_error::Error<E>, whole: &str) -> Problem {
    let message = error.inner().to_string();
    let path = error.path().to_string();
    let field = if path == "." { backticked(&message).unwrap_or(whole).to_owned() } else { path };
    // A member named "" (or a path serde cannot name) has no name to point at: the whole is at fault.
    let field = if field.is_empty() { whole.to_owned() } else { field };
    Problem::invalid(&field, message)
}

/// The name serde quotes in "missing field `name`" or "unknown field `nmae`, expected …".
fn backticked(message: &str) -> Option<&str> {
    let start = message.find('`')? + 1;
    let length = message[start..].find('`')?;
    Some(&message[start..start + length])
}

/// Path parameters; one that does not parse is refused naming the parameter.
pub struct Ids<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state).await.map(|p| Self(p.0)).map_err(|e: PathRejection| {
            ApiError(Problem::invalid("path", format!("{}: ids are GUIDs as the API returned them.", e.body_text())))
        })
    }
}

/// Query parameters; ones that do not parse are refused naming the parameter (`removeContent`, `limit`).
pub struct Params<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(Self).map_err(|e| ApiError(at_fault(&e, "query")))
    }
}

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Token,
    Session,
}

/// The user an API request acts for: by API token, or by the session cookie (with the CSRF header on
/// requests that change something, so another site cannot make a signed-in browser call the API).
pub struct Caller {
    pub user: User,
    pub via: Via,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        let now = state.clock.unix();
        if let Some(authorization) = parts.headers.get(header::AUTHORIZATION) {
            let token = authorization.to_str().ok().and_then(|v| v.strip_prefix("Bearer ")).map(str::trim).unwrap_or_default();
            return match state.store.use_api_token(&session::hash(token), now).await {
                Ok(Some((_, user))) => Ok(Self { user, via: Via::Token }),
                Ok(None) => Err(ApiError(Problem::Unauthenticated(
                    "The API token is not valid: it may be mistyped, revoked or expired. Send Authorization: Bearer <token> with a token from My settings.".into(),
                ))),
                Err(error) => Err(ApiError(Problem::store("API token", "reading an API token")(error))),
            };
        }
        let not_signed_in = || {
            ApiError(Problem::Unauthenticated(
                "Send an API token as Authorization: Bearer <token> (make one in My settings), or sign in.".into(),
            ))
        };
        let Some(cookie) = session::cookie(&parts.headers, SESSION_COOKIE) else { return Err(not_signed_in()) };
        let signed_in = match state.store.session(&session::hash(&cookie), now).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(not_signed_in()),
            Err(error) => return Err(ApiError(Problem::store("session", "reading a session")(error))),
        };
        let changes = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        let sent = parts.headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if changes && !session::same(&signed_in.csrf_token, sent) {
            return Err(ApiError(Problem::Csrf));
        }
        Ok(Self { user: signed_in.user, via: Via::Session })
    }
}

/// A whole number, also when written as one with a zero fraction (`30.0`), as JSON Schema's `integer` allows.
pub(super) fn whole_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Option::<serde_json::Number>::deserialize(deserializer)? {
        None => Ok(None),
        Some(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom(format!("expected a whole number of days, got {n}"))),
    }
}

pub(super) type Answer<T> = Result<T, ApiError>;

pub(super) fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn serde_messages_name_their_field() {
        assert_eq!(backticked("missing field `name` at line 1 column 2"), Some("name"));
        assert_eq!(backticked("unknown field `nmae`, expected `name`"), Some("nmae"));
        assert_eq!(backticked("expected value"), None);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Named {
        name: String,
    }

    #[test]
    fn only_one_json_object_is_a_body() {
        assert_eq!(parse_object::<Named>(br#" {"name": "x"} "#).ok(), Some(Named { name: "x".into() }));
        for bad in [&br#"["x"]"#[..], b"5", b"", br#"{"name": "x"} {}"#, br#"{"name": 5}"#, br#"{"nmae": "x"}"#] {
            let field = parse_object::<Named>(bad).err().and_then(|p| p.field().map(str::to_owned));
            assert!(matches!(field.as_deref(), Some("body" | "name" | "nmae")), "{bad:?}: {field:?}");
        }
    }

    use proptest::prelude::*;

    /// Bodies built from the grammar: objects with `name` and maybe other members, other JSON values, and
    /// then each mutated a little (a byte dropped, changed or added, text appended), so the cases land on
    /// the decisions: object or not, the field there and a string, unknown fields, trailing data.
    fn bodies() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            Just(serde_json::json!("x")),
            Just(serde_json::json!(5)),
            Just(serde_json::json!(null)),
            Just(serde_json::json!(["x"])),
            Just(serde_json::json!({})),
            ".{0,8}".prop_map(serde_json::Value::String),
        ];
        let member = (prop::sample::select(vec!["name", "nmae", "Name", "other"]), value.clone());
        let object = prop::collection::vec(member, 0..3).prop_map(|members| {
            serde_json::Value::Object(members.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()).to_string().into_bytes()
        });
        let named = ".{0,8}".prop_map(|name| serde_json::json!({ "name": name }).to_string().into_bytes());
        let other = value.prop_map(|v| v.to_string().into_bytes());
        let mutation = prop_oneof![Just(None), (any::<prop::sample::Index>(), any::<u8>()).prop_map(Some),];
        let tail = prop::sample::select(vec!["", " ", "\n", " {}", "x", ",", "]"]);
        (prop_oneof![3 => named, 3 => object, 1 => other], mutation, any::<bool>(), tail).prop_map(|(mut bytes, mutation, drop, tail)| {
            if let Some((at, byte)) = mutation {
                let at = at.index(bytes.len().max(1)).min(bytes.len());
                if drop && at < bytes.len() {
                    bytes.remove(at);
                } else if at < bytes.len() {
                    bytes[at] = byte;
                } else {
                    bytes.push(byte);
                }
            }
            bytes.extend_from_slice(tail.as_bytes());
            bytes
        })
    }

    proptest::proptest! {
        #[test]
        fn any_body_is_the_one_object_it_names_or_a_refusal_naming_a_field(bytes in bodies()) {
            // What the rule says the answer must be, from a plain JSON reading of the same bytes.
            let expected = match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(serde_json::Value::Object(members)) if members.len() == 1 => members.get("name").and_then(|n| n.as_str()).map(str::to_owned),
                _ => None,
            };
            match parse_object::<Named>(&bytes) {
                Ok(named) => prop_assert_eq!(Some(named.name), expected),
                Err(problem) => {
                    prop_assert!(expected.is_none(), "{:?} was refused", String::from_utf8_lossy(&bytes));
                    prop_assert!(problem.field().is_some_and(|f| !f.is_empty()));
                }
            }
        }
    }
}
