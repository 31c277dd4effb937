//! The operations on apps that the edges (pages, API, CLI) call: each checks its input, acts on the store and
//! records the change in the audit log. `actor` is who did it, as the audit log names them.

use crate::AppError;
use crate::app::AppSpec;
use crate::keys::{self, NewSecretKey};
use pbi_store::{App, AppKey, KeyToStore, NewAuditEntry, Store, StoreError};
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// Creates an app and its first secret key (in the result only: it is shown once).
pub async fn create(store: &Store, actor: &str, spec: &AppSpec, now: i64) -> Result<(App, NewSecretKey), AppError> {
    let checked = spec.check()?.0;
    usable_registration(store, checked.registration_id).await?;
    let key = keys::generate();
    let audit = entry(actor, "apps.created", &checked.name, None, Some(format!("origins {}", checked.allowed_origins.join(", "))));
    let app = store.add_app(&checked, KeyToStore { hash: &key.hash, hint: &key.hint }, &audit, now).await?;
    Ok((app, key))
}

/// Replaces an app's name, registration and allowed origins (its keys stay).
pub async fn update(store: &Store, actor: &str, id: Uuid, spec: &AppSpec, now: i64) -> Result<App, AppError> {
    let checked = spec.check()?.0;
    let before = store.app(id).await?;
    usable_registration(store, checked.registration_id).await?;
    let said = |app: &pbi_store::NewApp| format!("'{}', origins {}", app.name, app.allowed_origins.join(", "));
    let audit = entry(actor, "apps.changed", &before.details.name, Some(said(&before.details)), Some(said(&checked)));
    Ok(store.update_app(id, &checked, &audit, now).await?)
}

/// Deletes an app; its secret keys stop working at once.
pub async fn delete(store: &Store, actor: &str, id: Uuid, now: i64) -> Result<(), AppError> {
    let app = store.app(id).await?;
    let audit = entry(actor, "apps.deleted", &app.details.name, Some(format!("origins {}", app.details.allowed_origins.join(", "))), None);
    Ok(store.delete_app(id, &audit, now).await?)
}

/// Refuses a registration that does not exist or was removed, naming the field.
async fn usable_registration(store: &Store, id: Uuid) -> Result<(), AppError> {
    match store.registration(id).await {
        Ok(registration) if registration.removed_at.is_none() => Ok(()),
        Ok(_) | Err(StoreError::NotFound(_)) => {
            Err(AppError::invalid("registrationId", format!("no registration {id} (list them with `pbi-bridge registration show`)")))
        }
        Err(other) => Err(other.into()),
    }
}

/// An app and its keys (the one in use first).
pub async fn show(store: &Store, id: Uuid) -> Result<(App, Vec<AppKey>), AppError> {
    let app = store.app(id).await?;
    let keys = store.app_keys(id).await?;
    Ok((app, keys))
}

/// A new secret key for the app; the older ones keep working for `overlap_hours` (24 when not given, 0 to
/// stop them at once).
pub async fn rotate_key(
    store: &Store,
    actor: &str,
    id: Uuid,
    overlap_hours: Option<i64>,
    now: i64,
) -> Result<(AppKey, NewSecretKey), AppError> {
    let overlap = keys::overlap_seconds(overlap_hours)?;
    let app = store.app(id).await?;
    let key = keys::generate();
    let audit = entry(actor, "apps.key.rotated", &app.details.name, None, Some(format!("older keys work {} more hours", overlap / 3600)));
    let made = store.rotate_app_key(id, KeyToStore { hash: &key.hash, hint: &key.hint }, now + overlap, &audit, now).await?;
    Ok((made, key))
}

/// Why a secret key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefused {
    #[error("this is not an app's secret key (those start with {prefix})", prefix = keys::SECRET_KEY_PREFIX)]
    NotAKey,
    #[error("the secret key is unknown, or was rotated and has stopped working: use the app's current key")]
    Unknown,
}

/// The app whose backend sent `key`, while the key works.
pub async fn app_for_key(store: &Store, key: &SecretString, now: i64) -> Result<Result<App, KeyRefused>, AppError> {
    let text = key.expose_secret();
    if !keys::looks_like_secret_key(text) {
        return Ok(Err(KeyRefused::NotAKey));
    }
    Ok(store.app_by_key(&keys::hash(text), now).await?.ok_or(KeyRefused::Unknown))
}

fn entry(actor: &str, action: &str, target: &str, old_value: Option<String>, new_value: Option<String>) -> NewAuditEntry {
    NewAuditEntry { actor: actor.to_owned(), action: action.to_owned(), target: target.to_owned(), old_value, new_value }
}
