//! The structured header values the stack reads: [`CSeq`], [`Via`], [`SipUri`] and
//! [`NameAddr`] (From/To/Contact), with their `;param` lists.
//!
//! Kept apart from the message framing in `message.rs`: framing decides whether bytes are a
//! SIP message at all, these decide what one header says once the message is accepted.

use std::net::SocketAddr;

use super::{Method, ParseError};

/// A parsed CSeq header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub number: u32,
    pub method: Method,
}

impl CSeq {
    /// Parses `number METHOD`.
    pub fn parse(value: &str) -> Result<CSeq, ParseError> {
        let mut parts = value.split_whitespace();
        match (parts.next(), parts.next(), parts.next()) {
            (Some(number), Some(method), None) => {
                let number = number
                    .parse()
                    .map_err(|_| ParseError::CSeq(value.to_string()))?;
                Ok(CSeq {
                    number,
                    method: Method::from_token(method),
                })
            }
            _ => Err(ParseError::CSeq(value.to_string())),
        }
    }
}

/// Why a structured header value does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// A Via is not `SIP/2.0/TRANSPORT host[:port][;params]`.
    #[error("bad Via {0:?}: expected `SIP/2.0/UDP host:port;branch=...`")]
    Via(String),
    /// A URI is not `sip:[user@]host[:port][;params]`.
    #[error("bad SIP URI {0:?}: expected `sip:user@host:port`")]
    Uri(String),
    /// A From/To/Contact value has no URI.
    #[error("bad address {0:?}: expected `\"Name\" <sip:...>;params` or `sip:...`")]
    NameAddr(String),
}

fn parse_params(text: &str) -> Vec<(String, Option<String>)> {
    text.split(';')
        .map(str::trim)
        .filter(|param| !param.is_empty())
        .map(|param| match param.split_once('=') {
            Some((key, value)) => (
                key.trim().to_ascii_lowercase(),
                Some(value.trim().trim_matches('"').to_string()),
            ),
            None => (param.to_ascii_lowercase(), None),
        })
        .collect()
}

/// Header or URI parameters after the first `;`: each one a non-empty token with an
/// optional value (`;;` and a trailing `;` are malformed, RFC 4475 `badinv01`).
fn params_well_formed(text: &str) -> bool {
    let text = text.trim();
    if text.is_empty() {
        return true;
    }
    text.split(';').all(|param| {
        let key = param
            .split_once('=')
            .map(|(key, _)| key)
            .unwrap_or(param)
            .trim();
        !key.is_empty()
            && key
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(ch))
    })
}

fn find_param<'a>(params: &'a [(String, Option<String>)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_deref().unwrap_or(""))
}

/// One Via hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// Parses one hop (`SIP/2.0/UDP host:port;branch=...`).
    pub fn parse(value: &str) -> Result<Via, HeaderError> {
        let err = || HeaderError::Via(value.to_string());
        // LWS may surround the slashes (`SIP / 2.0 / UDP`, RFC 4475 `wsinv`).
        let (head, params) = value.trim().split_once(';').unwrap_or((value.trim(), ""));
        let mut protocol_parts = head.splitn(3, '/');
        let (Some(name), Some(version), Some(rest)) = (
            protocol_parts.next().map(str::trim),
            protocol_parts.next().map(str::trim),
            protocol_parts.next().map(str::trim),
        ) else {
            return Err(err());
        };
        let mut rest_parts = rest.split_whitespace();
        let (Some(transport), Some(sent_by), None) =
            (rest_parts.next(), rest_parts.next(), rest_parts.next())
        else {
            return Err(err());
        };
        let transport_ok = transport
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(ch));
        if !name.eq_ignore_ascii_case("SIP")
            || version != "2.0"
            || !transport_ok
            || !params_well_formed(params)
        {
            return Err(err());
        }
        let (host, port) = split_host_port(sent_by).ok_or_else(err)?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params: parse_params(params),
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch")
    }

    /// Any parameter by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }
}

/// Splits `host[:port]`, including bracketed IPv6 literals.
fn split_host_port(text: &str) -> Option<(String, Option<u16>)> {
    if text.is_empty() {
        return None;
    }
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(port) => Some(port.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host.to_string(), port));
    }
    match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() => {
            Some((host.to_string(), Some(port.parse().ok()?)))
        }
        Some(_) => None,
        None => Some((text.to_string(), None)),
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<(String, Option<String>)>,
}

impl SipUri {
    /// Parses `sip:[user[:password]@]host[:port][;params][?headers]`.
    pub fn parse(text: &str) -> Result<SipUri, HeaderError> {
        let err = || HeaderError::Uri(text.to_string());
        let text_trimmed = text.trim();
        let (scheme, rest) = text_trimmed.split_once(':').ok_or_else(err)?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return Err(err());
        }
        let rest = rest
            .split_once('?')
            .map(|(before, _)| before)
            .unwrap_or(rest);
        let (address, params) = rest.split_once(';').unwrap_or((rest, ""));
        let (user, host_port) = match address.rsplit_once('@') {
            Some((user_info, host_port)) => {
                let user = user_info
                    .split_once(':')
                    .map(|(user, _)| user)
                    .unwrap_or(user_info);
                (Some(user.to_string()), host_port)
            }
            None => (None, address),
        };
        let (host, port) = split_host_port(host_port).ok_or_else(err)?;
        Ok(SipUri {
            scheme,
            user,
            host,
            port,
            params: parse_params(params),
        })
    }

    /// `host:port` as a socket address when the host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port.unwrap_or(5060)))
    }
}

/// A From/To/Contact value: optional display name, URI, header parameters (tag, expires...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: String,
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses `"Name" <uri>;params`, `Name <uri>;params` or a bare `uri;params`.
    ///
    /// A quoted display name may contain anything but must be closed; an unquoted one is
    /// tokens only; no whitespace directly inside `<>`; a bare URI cannot carry `?headers`
    /// (RFC 4475 `quotbal`, `baddn`, `badaspec`, `regbadct`).
    pub fn parse(value: &str) -> Result<NameAddr, HeaderError> {
        let err = || HeaderError::NameAddr(value.to_string());
        let value = value.trim();
        let (display_name, after_display) = if let Some(quoted) = value.strip_prefix('"') {
            let mut escaped = false;
            let mut close = None;
            for (idx, ch) in quoted.char_indices() {
                match ch {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        close = Some(idx);
                        break;
                    }
                    _ => {}
                }
            }
            let close = close.ok_or_else(err)?;
            let rest = quoted[close + 1..].trim_start();
            if !rest.starts_with('<') {
                return Err(err());
            }
            let display = quoted[..close].trim();
            ((!display.is_empty()).then(|| display.to_string()), rest)
        } else if let Some(open) = value.find('<') {
            let display = value[..open].trim();
            let is_tokens = display.chars().all(|ch| {
                ch.is_ascii_alphanumeric() || ch == ' ' || ch == '\t' || "-.!%*_+`'~".contains(ch)
            });
            if !is_tokens {
                return Err(err());
            }
            (
                (!display.is_empty()).then(|| display.to_string()),
                &value[open..],
            )
        } else {
            // Without angle brackets, parameters after the URI belong to the header (RFC 3261 20.10).
            let (uri, params) = value.split_once(';').unwrap_or((value, ""));
            let uri = uri.trim();
            if uri.is_empty() || !uri.contains(':') || uri.contains(['?', ',', ' ', '"']) {
                return Err(err());
            }
            if !params_well_formed(params) {
                return Err(err());
            }
            return Ok(NameAddr {
                display_name: None,
                uri: uri.to_string(),
                params: parse_params(params),
            });
        };
        let inner = after_display.strip_prefix('<').ok_or_else(err)?;
        let close = inner.find('>').ok_or_else(err)?;
        let uri = &inner[..close];
        if uri.is_empty() || uri.trim() != uri || !uri.contains(':') {
            return Err(err());
        }
        let rest = inner[close + 1..].trim();
        let params = match rest.strip_prefix(';') {
            Some(params) => params,
            None if rest.is_empty() => "",
            None => return Err(err()),
        };
        if !params_well_formed(params) {
            return Err(err());
        }
        Ok(NameAddr {
            display_name,
            uri: uri.to_string(),
            params: parse_params(params),
        })
    }

    /// The tag parameter.
    pub fn tag(&self) -> Option<&str> {
        find_param(&self.params, "tag")
    }

    /// Any header parameter by name.
    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name)
    }
}
