//! Web security shared by the two servers of Outpost: the HQ hub's console and the site
//! box's agent desk and admin UI.
//!
//! - [`throttle`]: login throttling keyed so that an attacker slows only themselves
//!   (sans-IO: the caller passes the time in).
//! - [`origin`]: state-changing requests from a foreign page (`Origin` of another site, or
//!   `Origin: null`) are refused.
//! - [`headers`]: the security headers every response carries (a CSP without inline script,
//!   no framing, `nosniff`, a referrer policy).
//! - [`password`]: a login for an unknown user costs the same argon2 work as a wrong password.
//! - [`probe`]: the `/metrics` page's OpenMetrics text (through `prometheus-client`) and the
//!   free disk both servers report.
//! - [`backup`]: the backup directory both servers write and read back (SQLite's online
//!   backup of the live database, the files beside it, a manifest).
//! - [`protect`]: the middleware that applies the Origin check and the headers to a router.
//!
//! Why hand-written rather than a CSRF-token or rate-limit crate: both servers need exactly
//! these four small rules, with answers in their own error format (JSON for `/api`, a page
//! otherwise), and keyed on facts only they know (the account name typed into their login
//! form). The general crates (token-based CSRF, per-IP governors) either need per-form state
//! the server-rendered pages do not have, or lock out by account, which would let an attacker
//! lock a real user out from elsewhere. The whole crate is a few hundred lines and tested
//! here with simulated time.

pub mod backup;
pub mod headers;
pub mod messages;
pub mod origin;
pub mod password;
pub mod probe;
pub mod throttle;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub use headers::add_security_headers;
pub use origin::{check_origin, OriginRefusal};
pub use password::verify_or_dummy;
pub use throttle::{LoginThrottle, SharedThrottle, ThrottleConfig, Wait};

/// The address a request came from, as the TCP connection says (never a forwarded header,
/// which a client may forge). Needs the server to run with
/// `into_make_service_with_connect_info::<SocketAddr>()`; without it every request counts
/// as the unspecified address, which throttles more, never less.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(ip))
    }
}

/// Whether `path` is a JSON API path (answers in JSON) rather than a page.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The Origin check and the security headers as one axum middleware
/// (`.layer(axum::middleware::from_fn(web_guard::protect))`). A refused request gets 403:
/// `{"error": …}` under `/api`, otherwise a short page in Chinese and English.
pub async fn protect(request: Request, next: Next) -> Response {
    let host = request_host(&request);
    let mut response = match check_origin(request.method(), request.headers().get(header::ORIGIN), host.as_deref()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal_response(is_api(request.uri().path()), &refusal),
    };
    add_security_headers(response.headers_mut());
    response
}

/// The host the client addressed: the `Host` header, or the URI's authority (HTTP/2).
pub fn request_host(request: &Request) -> Option<String> {
    request
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()))
}

/// The default answer to a refused cross-origin request.
pub fn refusal_response(api: bool, refusal: &OriginRefusal) -> Response {
    if api {
        let body = serde_json::json!({ "error": refusal.to_string() });
        (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
    } else {
        let page = format!(
            "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>403</title></head>\
             <body><h1>请求被拒绝 / Request refused</h1><p>{}</p><p>{}</p><p><a href=\"/\">返回 / Back</a></p></body></html>",
            escape(refusal.zh()),
            escape(&refusal.to_string())
        );
        (StatusCode::FORBIDDEN, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], page).into_response()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An error answer under `/api` that is not JSON (axum's own rejections, a wrong method, an
/// empty 404): its status and text, for the server to answer with its documented JSON error
/// in the caller's language. Any other answer is handed back untouched as `Err`.
pub async fn plain_api_error(path_is_api: bool, response: Response) -> Result<(StatusCode, String), Response> {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !path_is_api || is_json || !(status.is_client_error() || status.is_server_error()) {
        return Err(response);
    }
    // Framework rejections are short texts; anything longer is cut, not buffered whole.
    let detail = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    Ok((status, detail))
}

/// `429 Too Many Requests` with `Retry-After` for a throttled login: JSON for the API.
pub fn throttled_json(wait: Wait) -> Response {
    let body = serde_json::json!({ "error": wait.to_string(), "retry_after_seconds": wait.seconds() });
    (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, wait.seconds().to_string())], axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request as HttpRequest};
    use axum::routing::{get, post};
    use axum::Router;
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new()
            .route("/page", get(|| async { "page" }).post(|| async { "posted" }))
            .route("/api/thing", post(|| async { "{}" }))
            .layer(axum::middleware::from_fn(protect))
    }

    async fn call(method: Method, path: &str, origin: Option<&str>) -> Response {
        let mut request = HttpRequest::builder().method(method).uri(path).header(header::HOST, "hub.example:8080");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        app().oneshot(request.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn foreign_posts_are_refused_and_every_answer_has_the_headers() {
        let cases = [
            (Method::POST, "/page", Some("http://evil.example"), StatusCode::FORBIDDEN),
            (Method::POST, "/api/thing", Some("null"), StatusCode::FORBIDDEN),
            (Method::POST, "/api/thing", Some("http://hub.example:8080"), StatusCode::OK),
            (Method::POST, "/page", None, StatusCode::OK),
            (Method::GET, "/page", Some("http://evil.example"), StatusCode::OK),
        ];
        for (method, path, origin, expect) in cases {
            let response = call(method.clone(), path, origin).await;
            assert_eq!(response.status(), expect, "{method} {path} from {origin:?}");
            let csp = response.headers().get(header::CONTENT_SECURITY_POLICY).and_then(|v| v.to_str().ok()).unwrap_or("");
            assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
            assert_eq!(response.headers().get(header::X_CONTENT_TYPE_OPTIONS).unwrap(), "nosniff");
            if expect == StatusCode::FORBIDDEN {
                let json = response.headers().get(header::CONTENT_TYPE).unwrap().to_str().unwrap().contains("json");
                assert_eq!(json, path.starts_with("/api/"), "{path}: JSON for the API, a page otherwise");
            }
        }
    }
}

/// An error answer's JSON `error` text passed through `localize` (the rest of the answer,
/// headers included, kept). Any other answer is handed back untouched.
pub async fn localize_json_error(response: Response, localize: impl FnOnce(&str) -> String) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"));
    if !is_json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error bodies are a sentence or two; a larger one is not an error body to rewrite.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return (status, "").into_response();
    };
    let rewritten = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(mut value) => match value.get("error").and_then(|e| e.as_str()) {
            Some(message) => {
                value["error"] = serde_json::Value::String(localize(message));
                serde_json::to_vec(&value).unwrap_or_else(|_| bytes.to_vec())
            }
            None => bytes.to_vec(),
        },
        Err(_) => bytes.to_vec(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(rewritten))
}

/// An error answer outside `/api` in plain text (axum's rejection of a form or a path): its
/// status and text, for the server to answer with a page in the caller's language. Any
/// other answer (a page, a redirect, an empty 404) is handed back untouched as `Err`.
pub async fn plain_page_error(path_is_api: bool, response: Response) -> Result<(StatusCode, String), Response> {
    let status = response.status();
    let is_plain = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("text/plain"));
    // Only axum's rejections of what the request carried (a form or path that does not
    // parse, a body of the wrong type); a guard's own 401 / 403 / 404 stay as they are.
    let rejection = [StatusCode::BAD_REQUEST, StatusCode::UNSUPPORTED_MEDIA_TYPE, StatusCode::UNPROCESSABLE_ENTITY].contains(&status);
    if path_is_api || !is_plain || !rejection {
        return Err(response);
    }
    let detail = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    Ok((status, detail))
}
