//! The administrator's "Users" page: pbi-bridge's own accounts, listed and added.

use crate::AppState;
use crate::frame::Message;
use crate::ops::{self, NewUser};
use crate::pages::{form_expired, render};
use crate::problem::Problem;
use crate::session::{self, Flash, SignedIn};
use crate::users::{SignInLock, SignInName};
use askama::Template;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use pbi_store::Session;
use secrecy::SecretString;
use serde::Deserialize;
use std::sync::Arc;

struct UserRow {
    id: String,
    is_self: bool,
    disabled: bool,
    username: String,
    display_name: String,
    role: &'static str,
    /// HTML: a `<time>` (`frame::When`).
    created: String,
    /// While sign-ins with this name are refused: from where, and until when.
    lock: Option<String>,
}

/// Users listed on one page of the Users page.
const PAGE_SIZE: usize = 50;

/// A sign-in lock in words for the Users page.
fn lock_words(lock: &SignInLock) -> String {
    let until =
        time::OffsetDateTime::from_unix_timestamp(lock.until).map(|t| format!("{:02}:{:02} UTC", t.hour(), t.minute())).unwrap_or_default();
    match (lock.all_addresses, lock.addresses) {
        (true, _) => format!("locked out from every address until {until} (too many failed sign-ins)"),
        (false, 1) => format!("locked out from 1 address until {until} (too many failed sign-ins there)"),
        (false, n) => format!("locked out from {n} addresses until {until} (too many failed sign-ins there)"),
    }
}

/// The Add a user form as typed (never the password), and what is wrong with each field.
#[derive(Default)]
struct AddForm {
    username: String,
    display_name: String,
    admin: bool,
    username_error: Option<String>,
    display_name_error: Option<String>,
    password_error: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    csrf: &'a str,
    users: Vec<UserRow>,
    error: Option<String>,
    form: AddForm,
    page: usize,
    pages: usize,
    total: usize,
}

async fn page(state: &AppState, session: &Session, status: StatusCode, error: Option<String>, form: AddForm, page: usize) -> Response {
    let users = match ops::users(state, &session.user).await {
        Ok(users) => users,
        Err(problem) => return problem.page(),
    };
    let total = users.len();
    let pages = total.div_ceil(PAGE_SIZE).max(1);
    let page = page.clamp(1, pages);
    let locks = state.sign_in_guard.locks(state.clock.unix());
    let users = users
        .into_iter()
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|u| UserRow {
            lock: SignInName::parse(&u.username).ok().and_then(|name| locks.get(name.as_str())).map(lock_words),
            id: u.id.to_string(),
            is_self: u.id == session.user.id,
            disabled: u.disabled_at.is_some(),
            username: u.username,
            display_name: u.display_name,
            role: if u.is_admin { "admin" } else { "user" },
            created: crate::frame::when_html(crate::frame::When::at(u.created_at)),
        })
        .collect();
    render(status, &UsersPage { csrf: &session.csrf_token, users, error, form, page, pages, total })
}

#[derive(Deserialize)]
pub struct PageQuery {
    #[serde(default)]
    page: Option<usize>,
}

pub async fn show(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Query(query): Query<PageQuery>) -> Response {
    page(&state, &session, StatusCode::OK, None, AddForm::default(), query.page.unwrap_or(1)).await
}

/// Back to the Users page with a message bar (Post/Redirect/Get).
fn back(state: &AppState, session: &Session, message: Message) -> Response {
    session::done(state, session, "/admin/users", Flash::message(message))
}

#[derive(Deserialize)]
pub struct NewUserForm {
    csrf: String,
    username: String,
    #[serde(default)]
    display_name: String,
    password: SecretString,
    #[serde(default)]
    admin: Option<String>,
}

pub async fn create(State(state): State<Arc<AppState>>, SignedIn(session): SignedIn, Form(form): Form<NewUserForm>) -> Response {
    if !session.user.is_admin {
        return Problem::AdminOnly.page();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let is_admin = form.admin.as_deref() == Some("true");
    let new = NewUser { username: &form.username, display_name: &form.display_name, password: &form.password, is_admin };
    match ops::create_user(&state, &session.user, new).await {
        Ok(user) => {
            let message = format!("Added {}. Tell them their user name and password; they sign in at this site.", user.username);
            back(&state, &session, Message::success(message))
        }
        Err(Problem::Invalid { field, message }) => {
            let mut typed =
                AddForm { username: form.username.clone(), display_name: form.display_name.clone(), admin: is_admin, ..AddForm::default() };
            match field.as_str() {
                "displayName" => typed.display_name_error = Some(message),
                "password" => typed.password_error = Some(message),
                _ => typed.username_error = Some(message),
            }
            page(&state, &session, StatusCode::BAD_REQUEST, Some("Check the fields marked below.".into()), typed, 1).await
        }
        Err(problem) => problem.page(),
    }
}

#[derive(Deserialize)]
pub struct CsrfForm {
    csrf: String,
}

/// The outcome of an action on one user, said on the Users page after a redirect.
fn after(state: &AppState, session: &Session, done: Result<String, Problem>) -> Response {
    match done {
        Ok(message) => back(state, session, Message::success(message)),
        Err(problem @ (Problem::Invalid { .. } | Problem::Conflict(_))) => back(state, session, Message::error(problem.in_words())),
        Err(problem) => problem.page(),
    }
}

async fn set_disabled(state: &AppState, session: &Session, id: uuid::Uuid, csrf: &str, disabled: bool) -> Response {
    if !session.user.is_admin {
        return Problem::AdminOnly.page();
    }
    if !session::same(&session.csrf_token, csrf) {
        return form_expired();
    }
    let done = ops::set_user_disabled(state, &session.user, id, disabled).await.map(|user| {
        if disabled {
            format!("Disabled {}: they are signed out and their API tokens no longer work.", user.username)
        } else {
            format!("Enabled {}: they can sign in again.", user.username)
        }
    });
    after(state, session, done)
}

pub async fn disable(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<uuid::Uuid>,
    Form(form): Form<CsrfForm>,
) -> Response {
    set_disabled(&state, &session, id, &form.csrf, true).await
}

pub async fn enable(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<uuid::Uuid>,
    Form(form): Form<CsrfForm>,
) -> Response {
    set_disabled(&state, &session, id, &form.csrf, false).await
}

#[derive(Deserialize)]
pub struct PasswordForm {
    csrf: String,
    password: SecretString,
}

pub async fn set_password(
    State(state): State<Arc<AppState>>,
    SignedIn(session): SignedIn,
    Path(id): Path<uuid::Uuid>,
    Form(form): Form<PasswordForm>,
) -> Response {
    if !session.user.is_admin {
        return Problem::AdminOnly.page();
    }
    if !session::same(&session.csrf_token, &form.csrf) {
        return form_expired();
    }
    let done = ops::set_password(&state, &session.user, id, &form.password)
        .await
        .map(|user| format!("Set a new password for {}; they are signed out everywhere.", user.username));
    after(&state, &session, done)
}
