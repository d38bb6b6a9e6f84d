//! The security headers every response carries.
//!
//! The content security policy allows scripts, styles, images, media and fetches only from
//! the server itself and no inline script at all, so an injected `<script>` or `onclick=`
//! does not run; both UIs keep their scripts in one embedded file each. Framing is refused
//! (`frame-ancestors 'none'` and the older `X-Frame-Options`) against click-jacking. The
//! referrer policy keeps the `Referer` for same-origin navigation (the hub's language switch
//! returns to the page it came from) and sends none elsewhere.

use axum::http::header::{
    HeaderMap, HeaderValue, CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};

/// The content security policy of both UIs.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Adds the headers a handler has not set itself.
pub fn add_security_headers(headers: &mut HeaderMap) {
    let set = [
        (CONTENT_SECURITY_POLICY, CSP),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "same-origin"),
        (X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in set {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_added_without_overwriting() {
        let mut headers = HeaderMap::new();
        headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        add_security_headers(&mut headers);
        assert_eq!(headers[REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[X_FRAME_OPTIONS], "DENY");
        let csp = headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(!csp.contains("unsafe-inline") && csp.contains("script-src 'self'"), "{csp}");
    }
}
