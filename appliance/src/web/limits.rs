//! What the JSON API accepts: [`ApiJson`] and [`ApiQuery`] replace axum's `Json` and
//! `Query` so that a malformed body (400), a body that is not JSON (415) or has the wrong
//! shape (422), and a bad query leave as the documented JSON error in the UI's language,
//! never as axum's plain text; and so that every text field is held to its length limit
//! ([`Limits`]): a request type cannot be read without saying its limits.
//!
//! Lengths count characters (a Chinese character is one), and the error names the field
//! and the limit. Ids (path parameters through [`ApiPath`], and id fields of queries and
//! bodies) are held to [`MAX_ID`], what the store's SQLite integers hold: a larger one is
//! the client's mistake (400 naming the field), not the store's failure (500).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::Json;
use serde::de::DeserializeOwned;

use super::i18n::Lang;
use super::{ApiError, AppState, cookie_header};

/// Usernames (the store's own limit).
pub const USERNAME: usize = 32;
/// Passwords: long enough for a passphrase, short enough not to make hashing a weapon.
pub const PASSWORD: usize = 128;
/// People's names, role names, line names.
pub const NAME: usize = 64;
/// Callback titles.
pub const TITLE: usize = 100;
/// Free notes (a callback's note).
pub const NOTE: usize = 1000;
/// One value of a business record or customer field.
pub const VALUE: usize = 1000;
/// Field keys and enumerated words (states, modes, outcomes).
pub const KEY: usize = 64;
/// Entries of one list in a request (rules, values, modules).
pub const ITEMS: usize = 500;
/// The largest id: SQLite's integers are signed 64-bit (the document's `format: int64`).
pub const MAX_ID: u64 = i64::MAX as u64;

/// The length limits of a request type.
pub trait Limits {
    /// Refuses the first field over its limit.
    fn check(&self, check: &mut Check) -> Result<(), ApiError>;
}

/// Checks fields against their limits, with messages in `lang`.
pub struct Check {
    pub lang: Lang,
}

impl Check {
    /// `value` may hold at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) -> Result<(), ApiError> {
        let got = value.chars().count();
        if got > max {
            return Err(ApiError::bad_request(self.lang.errors().too_long(field, max, got)));
        }
        Ok(())
    }

    /// Like [`Check::text`], for an optional value.
    pub fn opt(&mut self, field: &str, value: Option<&str>, max: usize) -> Result<(), ApiError> {
        value.map_or(Ok(()), |value| self.text(field, value, max))
    }

    /// `value` must hold 1 to `max` characters, not counting surrounding blanks.
    pub fn required(&mut self, field: &str, value: &str, max: usize) -> Result<(), ApiError> {
        if value.trim().is_empty() {
            return Err(ApiError::bad_request(self.lang.errors().empty(field)));
        }
        self.text(field, value, max)
    }

    /// An id the store can hold (at most [`MAX_ID`]).
    pub fn id(&mut self, field: &str, value: u64) -> Result<(), ApiError> {
        if value > MAX_ID {
            return Err(ApiError::bad_request(self.lang.errors().too_big(field, MAX_ID)));
        }
        Ok(())
    }

    /// Like [`Check::id`], for an optional id.
    pub fn opt_id(&mut self, field: &str, value: Option<u64>) -> Result<(), ApiError> {
        value.map_or(Ok(()), |value| self.id(field, value))
    }

    /// A list of at most `max` items.
    pub fn items(&mut self, field: &str, len: usize, max: usize) -> Result<(), ApiError> {
        if len > max {
            return Err(ApiError::bad_request(self.lang.errors().too_many(field, max, len)));
        }
        Ok(())
    }
}

fn lang_of(headers: &axum::http::HeaderMap) -> Lang {
    Lang::from_cookie_header(cookie_header(headers))
}

/// A JSON body of type `T`, within its limits.
pub struct ApiJson<T>(pub T);

/// The JSON error of a body axum could not read.
pub fn json_rejection(rejection: JsonRejection, lang: Lang) -> ApiError {
    let errors = lang.errors();
    let detail = rejection.body_text();
    let (status, message) = match rejection {
        JsonRejection::JsonDataError(_) => (StatusCode::UNPROCESSABLE_ENTITY, super::messages::CATALOG.rejection(&detail, errors.zh)),
        JsonRejection::JsonSyntaxError(_) => (StatusCode::BAD_REQUEST, errors.bad_json.to_string()),
        JsonRejection::MissingJsonContentType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, errors.not_json.to_string()),
        other => (other.status(), errors.framework(other.status(), &detail)),
    };
    ApiError::new(status, message)
}

impl<T> FromRequest<AppState> for ApiJson<T>
where
    T: DeserializeOwned + Limits + Send,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = lang_of(request.headers());
        let Json(value) = Json::<T>::from_request(request, state).await.map_err(|rejection| json_rejection(rejection, lang))?;
        value.check(&mut Check { lang })?;
        Ok(ApiJson(value))
    }
}

/// A query string of type `T`, within its limits.
pub struct ApiQuery<T>(pub T);

fn query_rejection(rejection: QueryRejection, lang: Lang) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, super::messages::CATALOG.rejection(&rejection.body_text(), lang.errors().zh))
}

impl<T> FromRequestParts<AppState> for ApiQuery<T>
where
    T: DeserializeOwned + Limits + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers);
        let Query(value) =
            Query::<T>::from_request_parts(parts, state).await.map_err(|rejection| query_rejection(rejection, lang))?;
        value.check(&mut Check { lang })?;
        Ok(ApiQuery(value))
    }
}

/// A body that is read as any JSON value and checked by its handler.
impl Limits for serde_json::Value {
    fn check(&self, _: &mut Check) -> Result<(), ApiError> {
        Ok(())
    }
}

/// Path parameters of type `T` (ids), each within [`MAX_ID`].
pub struct ApiPath<T>(pub T);

impl<T> FromRequestParts<AppState> for ApiPath<T>
where
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let lang = lang_of(&parts.headers);
        // Every path parameter of this API is an id: a number past what the store holds is
        // refused by name before it is parsed.
        if let Ok(raw) = RawPathParams::from_request_parts(parts, state).await {
            let mut check = Check { lang };
            for (name, value) in &raw {
                if let Ok(id) = value.parse::<u64>() {
                    check.id(name, id)?;
                }
            }
        }
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::new(rejection.status(), lang.errors().framework(rejection.status(), &rejection.body_text())))?;
        Ok(ApiPath(value))
    }
}
