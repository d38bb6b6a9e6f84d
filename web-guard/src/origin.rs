//! Refuses state-changing requests sent by another site's page.
//!
//! A browser names the page's origin in the `Origin` header of every cross-origin request
//! and of same-origin POSTs; a sandboxed or `file:` page sends `Origin: null`. A request
//! whose method changes state (anything but GET, HEAD, OPTIONS, TRACE) passes only when its
//! `Origin` is absent (not a browser, or an old one that the `SameSite` session cookie
//! already covers) or names the host the request was sent to. This is the whole CSRF defence
//! next to the cookie: no per-form tokens, so server-rendered forms and `fetch` calls work
//! unchanged.

use axum::http::{HeaderValue, Method};

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginRefusal {
    /// `Origin: null` (a sandboxed frame, a local file, a privacy redirect).
    #[error("refused: this request came from a page with no origin (Origin: null); use the console's own pages")]
    Null,
    /// Another site's page.
    #[error("refused: this request came from another site's page ({origin}); use the console's own pages")]
    Foreign { origin: String },
    /// The request names no host to compare with.
    #[error("refused: the request names no Host to check its Origin against")]
    NoHost,
}

impl OriginRefusal {
    /// The reason in Chinese.
    pub fn zh(&self) -> &'static str {
        match self {
            OriginRefusal::Null => "该请求来自无来源的页面（Origin: null），已拒绝；请在本系统的页面上操作",
            OriginRefusal::Foreign { .. } => "该请求来自其他网站的页面，已拒绝；请在本系统的页面上操作",
            OriginRefusal::NoHost => "请求缺少 Host，无法核对来源，已拒绝",
        }
    }
}

/// Whether `method` can change state (and so needs a same-origin check).
pub fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE)
}

/// Checks a request's `Origin` against the host it was sent to (`Host` header).
pub fn check_origin(method: &Method, origin: Option<&HeaderValue>, host: Option<&str>) -> Result<(), OriginRefusal> {
    if !changes_state(method) {
        return Ok(());
    }
    let Some(origin) = origin else { return Ok(()) };
    let origin = origin.to_str().map_err(|_| OriginRefusal::Foreign { origin: "(not text)".to_string() })?.trim();
    if origin.eq_ignore_ascii_case("null") {
        return Err(OriginRefusal::Null);
    }
    let host = host.ok_or(OriginRefusal::NoHost)?;
    let foreign = || OriginRefusal::Foreign { origin: origin.to_string() };
    let (scheme, authority) = origin.split_once("://").ok_or_else(foreign)?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return Err(foreign()),
    };
    if normalise(authority, default_port) == normalise(host, default_port) {
        Ok(())
    } else {
        Err(foreign())
    }
}

/// `host[:port]` lower-cased with the scheme's default port made explicit.
fn normalise(authority: &str, default_port: &str) -> String {
    let authority = authority.trim().trim_end_matches('/').to_ascii_lowercase();
    // An IPv6 literal is bracketed: the port follows the closing bracket.
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port { authority } else { format!("{authority}:{default_port}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(method: Method, origin: Option<&str>, host: Option<&str>) -> Result<(), OriginRefusal> {
        let origin = origin.map(|o| HeaderValue::from_str(o).unwrap());
        check_origin(&method, origin.as_ref(), host)
    }

    #[test]
    fn same_origin_and_absent_pass_foreign_and_null_do_not() {
        let host = Some("10.0.0.5:8080");
        assert_eq!(check(Method::POST, None, host), Ok(()));
        assert_eq!(check(Method::POST, Some("http://10.0.0.5:8080"), host), Ok(()));
        assert_eq!(check(Method::PUT, Some("HTTP://10.0.0.5:8080"), host), Ok(()));
        assert_eq!(check(Method::POST, Some("http://hub.example"), Some("hub.example:80")), Ok(()));
        assert_eq!(check(Method::POST, Some("https://hub.example"), Some("hub.example")), Ok(()));
        assert_eq!(check(Method::POST, Some("http://[::1]:9000"), Some("[::1]:9000")), Ok(()));
        assert_eq!(check(Method::GET, Some("http://evil.example"), host), Ok(()), "reads are not checked");
        assert_eq!(check(Method::POST, Some("null"), host), Err(OriginRefusal::Null));
        for foreign in ["http://evil.example", "http://10.0.0.5:8081", "http://10.0.0.5", "ftp://10.0.0.5:8080", "10.0.0.5:8080"] {
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                assert!(matches!(check(method.clone(), Some(foreign), host), Err(OriginRefusal::Foreign { .. })), "{method} {foreign}");
            }
        }
        assert_eq!(check(Method::POST, Some("http://10.0.0.5:8080"), None), Err(OriginRefusal::NoHost));
    }
}
