//! What the JSON API reads: [`ApiJson`], [`ApiPath`] and [`ApiMultipart`] stand in for
//! axum's `Json`, `Path` and `Multipart` so that a body not declared as JSON (415), malformed
//! JSON (400), a body of the wrong shape (422), a path parameter that does not parse (400)
//! and a broken upload (400) leave as the documented JSON error ([`super::ErrorBody`]) in the
//! caller's language, never as axum's plain text. The messages name the field at fault by
//! its label ([`super::messages`]).

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Multipart, Path, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;

use super::guard::request_tr;
use super::{ApiError, Tr};

/// `en` or `zh`, as the caller's `lang` cookie says.
pub(super) fn text(tr: Tr, en: &str, zh: &str) -> String {
    if tr.is_en() { en.to_string() } else { zh.to_string() }
}

/// The message of an error axum answered by itself (wrong method, body too large, …).
pub(super) fn framework(tr: Tr, status: StatusCode, detail: &str) -> String {
    match status {
        StatusCode::METHOD_NOT_ALLOWED => text(
            tr,
            "this route does not take that method: see /api/openapi.json",
            "该接口不支持此请求方法：见 /api/openapi.json",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => text(
            tr,
            "the request body is too large: send a smaller file",
            "请求内容过大：请发送较小的文件",
        ),
        StatusCode::NOT_FOUND => text(tr, "no such API route: see /api/openapi.json", "没有该接口：见 /api/openapi.json"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => text(
            tr,
            "the body must be JSON: send it with Content-Type: application/json",
            "请求内容须为 JSON 格式",
        ),
        status if status.is_client_error() && !detail.is_empty() => super::messages::rejection(tr, detail),
        _ => {
            let reason = status.canonical_reason().unwrap_or("error");
            text(tr, &format!("{} {reason}: try again, or see the hub's log", status.as_u16()), &format!("请求失败（{}），请重试或查看总控日志", status.as_u16()))
        }
    }
}

/// The JSON error of a body axum could not read as `T`.
fn json_rejection(tr: Tr, rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, super::messages::rejection(tr, &detail)),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(text(
            tr,
            "the body is not valid JSON: check the brackets, quotes and commas",
            "请求内容不是有效的 JSON：请检查括号、引号和逗号",
        )),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            text(
                tr,
                "the body must be JSON: send it with Content-Type: application/json",
                "请求内容须为 JSON 格式",
            ),
        ),
        other => {
            let status = other.status();
            ApiError::new(status, framework(tr, status, &detail))
        }
    }
}

/// A JSON body of type `T`.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let tr = request_tr(request.headers());
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(tr, rejection)),
        }
    }
}

/// Path parameters of type `T` (an id, a pair of them).
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let tr = request_tr(&parts.headers);
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(PathRejection::FailedToDeserializePathParams(err)) => {
                Err(ApiError::bad_request(super::messages::rejection(tr, &err.body_text())))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// A `multipart/form-data` upload.
pub struct ApiMultipart(pub Multipart);

impl<S> FromRequest<S> for ApiMultipart
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let tr = request_tr(request.headers());
        match Multipart::from_request(request, state).await {
            Ok(multipart) => Ok(ApiMultipart(multipart)),
            Err(rejection) => {
                let detail = rejection.body_text();
                let status = match rejection {
                    MultipartRejection::InvalidBoundary(_) => StatusCode::BAD_REQUEST,
                    other => other.status(),
                };
                tracing::debug!(detail, "upload refused");
                Err(ApiError::new(
                    status,
                    text(
                        tr,
                        "the upload is not a file upload form (multipart/form-data): send the file in a field named \"file\"",
                        "上传内容中没有文件：请选择文件后再上传",
                    ),
                ))
            }
        }
    }
}
