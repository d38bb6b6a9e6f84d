//! HTTP digest authentication for SIP (RFC 2617, RFC 8760: MD5 and SHA-256, `qop=auth`).
//!
//! Client side: [`Challenge::parse`] reads a `WWW-Authenticate` / `Proxy-Authenticate` value and
//! [`Challenge::answer`] produces the matching `Authorization` value. Server side:
//! [`NonceIssuer`] mints and checks stateless, time-limited nonces, [`challenge_header`] builds
//! the challenge, and [`Authorization::verify`] checks a client's answer against a password.

use md5::{Digest as _, Md5};
use sha2::Sha256;

/// The digest hash functions supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The token used in headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(token: &str) -> Result<Algorithm, AuthError> {
        match token.to_ascii_uppercase().as_str() {
            "MD5" => Ok(Algorithm::Md5),
            "SHA-256" => Ok(Algorithm::Sha256),
            _ => Err(AuthError::UnsupportedAlgorithm(token.to_string())),
        }
    }

    fn hash_hex(self, input: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(input.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(input.as_bytes())),
        }
    }
}

/// Why a digest header cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The scheme is not Digest.
    #[error("authentication scheme {0:?} is not Digest")]
    NotDigest(String),
    /// A required parameter is absent.
    #[error("digest header lacks the {0} parameter")]
    MissingParam(&'static str),
    /// An algorithm other than MD5 / SHA-256 (the -sess variants are not supported).
    #[error("digest algorithm {0:?} is not supported; use MD5 or SHA-256")]
    UnsupportedAlgorithm(String),
    /// The server only offers qop values other than `auth`.
    #[error("digest qop {0:?} is not supported; only qop=auth is")]
    UnsupportedQop(String),
}

/// Splits `Digest k=v, k="v, with comma"` into lowercase keys and unquoted values.
fn parse_digest_params(value: &str) -> Result<Vec<(String, String)>, AuthError> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(AuthError::NotDigest(scheme.to_string()));
    }
    let mut params = Vec::new();
    for part in crate::message::split_top_level_commas(rest) {
        if let Some((key, raw)) = part.split_once('=') {
            let raw = raw.trim();
            let unquoted = if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
                raw[1..raw.len() - 1].replace("\\\"", "\"")
            } else {
                raw.to_string()
            };
            params.push((key.trim().to_ascii_lowercase(), unquoted));
        }
    }
    Ok(params)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// A server's challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Whether the server asked for `qop=auth` (otherwise the RFC 2069 compatible form is used).
    pub qop_auth: bool,
    pub stale: bool,
}

/// A user's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// What a digest answer covers; shared by client and server so both compute the same value.
struct DigestInput<'a> {
    algorithm: Algorithm,
    username: &'a str,
    realm: &'a str,
    password: &'a str,
    method: &'a str,
    uri: &'a str,
    nonce: &'a str,
    /// `(nc, cnonce)` when qop=auth.
    qop: Option<(&'a str, &'a str)>,
}

fn digest_response(input: &DigestInput<'_>) -> String {
    let ha1 = input.algorithm.hash_hex(&format!(
        "{}:{}:{}",
        input.username, input.realm, input.password
    ));
    let ha2 = input
        .algorithm
        .hash_hex(&format!("{}:{}", input.method, input.uri));
    match input.qop {
        Some((nc, cnonce)) => input
            .algorithm
            .hash_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", input.nonce)),
        None => input
            .algorithm
            .hash_hex(&format!("{ha1}:{}:{ha2}", input.nonce)),
    }
}

impl Challenge {
    /// Parses a `WWW-Authenticate` or `Proxy-Authenticate` value.
    pub fn parse(value: &str) -> Result<Challenge, AuthError> {
        let params = parse_digest_params(value)?;
        let realm = param(&params, "realm")
            .ok_or(AuthError::MissingParam("realm"))?
            .to_string();
        let nonce = param(&params, "nonce")
            .ok_or(AuthError::MissingParam("nonce"))?
            .to_string();
        let algorithm = match param(&params, "algorithm") {
            Some(token) => Algorithm::parse(token)?,
            None => Algorithm::Md5,
        };
        let qop_auth = match param(&params, "qop") {
            Some(qop) => {
                if qop
                    .split(',')
                    .any(|option| option.trim().eq_ignore_ascii_case("auth"))
                {
                    true
                } else {
                    return Err(AuthError::UnsupportedQop(qop.to_string()));
                }
            }
            None => false,
        };
        Ok(Challenge {
            realm,
            nonce,
            opaque: param(&params, "opaque").map(str::to_string),
            algorithm,
            qop_auth,
            stale: param(&params, "stale").is_some_and(|stale| stale.eq_ignore_ascii_case("true")),
        })
    }

    /// The `Authorization` / `Proxy-Authorization` value answering this challenge.
    ///
    /// `cnonce` should be fresh per request; `nc` counts uses of this nonce, starting at 1.
    pub fn answer(
        &self,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        cnonce: &str,
        nc: u32,
    ) -> String {
        let nc_text = format!("{nc:08x}");
        let response = digest_response(&DigestInput {
            algorithm: self.algorithm,
            username: &credentials.username,
            realm: &self.realm,
            password: &credentials.password,
            method,
            uri,
            nonce: &self.nonce,
            qop: self.qop_auth.then_some((nc_text.as_str(), cnonce)),
        });
        let mut value = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", response=\"{response}\", algorithm={}",
            credentials.username,
            self.realm,
            self.nonce,
            self.algorithm.as_str()
        );
        if self.qop_auth {
            value.push_str(&format!(", qop=auth, nc={nc_text}, cnonce=\"{cnonce}\""));
        }
        if let Some(opaque) = &self.opaque {
            value.push_str(&format!(", opaque=\"{opaque}\""));
        }
        value
    }
}

/// A client's `Authorization` header, as the server reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    /// `(nc, cnonce)` when the client used qop=auth.
    pub qop: Option<(String, String)>,
}

impl Authorization {
    /// Parses an `Authorization` / `Proxy-Authorization` value.
    pub fn parse(value: &str) -> Result<Authorization, AuthError> {
        let params = parse_digest_params(value)?;
        let get = |name: &'static str| {
            param(&params, name)
                .map(str::to_string)
                .ok_or(AuthError::MissingParam(name))
        };
        let algorithm = match param(&params, "algorithm") {
            Some(token) => Algorithm::parse(token)?,
            None => Algorithm::Md5,
        };
        let qop = match param(&params, "qop") {
            Some(qop) if qop.eq_ignore_ascii_case("auth") => Some((get("nc")?, get("cnonce")?)),
            Some(other) => return Err(AuthError::UnsupportedQop(other.to_string())),
            None => None,
        };
        Ok(Authorization {
            username: get("username")?,
            realm: get("realm")?,
            nonce: get("nonce")?,
            uri: get("uri")?,
            response: get("response")?,
            algorithm,
            qop,
        })
    }

    /// Whether the response proves knowledge of `password` for `method`.
    pub fn verify(&self, method: &str, password: &str) -> bool {
        let expected = digest_response(&DigestInput {
            algorithm: self.algorithm,
            username: &self.username,
            realm: &self.realm,
            password,
            method,
            uri: &self.uri,
            nonce: &self.nonce,
            qop: self
                .qop
                .as_ref()
                .map(|(nc, cnonce)| (nc.as_str(), cnonce.as_str())),
        });
        constant_time_eq(
            expected.as_bytes(),
            self.response.to_ascii_lowercase().as_bytes(),
        )
    }
}

/// Compares without an early exit so response timing does not leak how much matched.
fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    left.iter()
        .zip(right)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// Builds a `WWW-Authenticate` value with `qop="auth"`.
pub fn challenge_header(realm: &str, nonce: &str, algorithm: Algorithm, stale: bool) -> String {
    let mut value = format!(
        "Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
        algorithm.as_str()
    );
    if stale {
        value.push_str(", stale=true");
    }
    value
}

/// Whether a nonce is one this server issued and still fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Issued here but too old: challenge again with `stale=true`, the password was right.
    Stale,
    /// Not issued here (forged or from before a restart).
    Invalid,
}

/// Mints stateless nonces: `timestamp.hmac-ish(secret, timestamp)`, so the registrar keeps no
/// per-client state and a restart simply invalidates old nonces.
#[derive(Debug, Clone)]
pub struct NonceIssuer {
    secret: [u8; 32],
}

impl NonceIssuer {
    /// A new issuer with a secret drawn from `rng`.
    pub fn from_rng<R: rand::RngCore + ?Sized>(rng: &mut R) -> NonceIssuer {
        let mut secret = [0u8; 32];
        rng.fill_bytes(&mut secret);
        NonceIssuer { secret }
    }

    fn mac(&self, timestamp: u64) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(timestamp.to_be_bytes());
        hasher.update(self.secret);
        hex::encode(&hasher.finalize()[..16])
    }

    /// A nonce for the current time (`now_secs`: seconds since any fixed epoch).
    pub fn issue(&self, now_secs: u64) -> String {
        format!("{now_secs:x}.{}", self.mac(now_secs))
    }

    /// Checks a nonce presented at `now_secs`; nonces older than `max_age_secs` are stale.
    pub fn check(&self, nonce: &str, now_secs: u64, max_age_secs: u64) -> NonceCheck {
        let Some((timestamp_hex, mac)) = nonce.split_once('.') else {
            return NonceCheck::Invalid;
        };
        let Ok(timestamp) = u64::from_str_radix(timestamp_hex, 16) else {
            return NonceCheck::Invalid;
        };
        if !constant_time_eq(self.mac(timestamp).as_bytes(), mac.as_bytes()) {
            return NonceCheck::Invalid;
        }
        if now_secs.saturating_sub(timestamp) > max_age_secs
            || timestamp > now_secs.saturating_add(5)
        {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }
}

/// The headers of a challenge and of its answer: `WWW-Authenticate` / `Authorization` for a
/// 401, `Proxy-Authenticate` / `Proxy-Authorization` for a 407.
pub fn challenge_headers(status: u16) -> (&'static str, &'static str) {
    if status == 401 {
        ("WWW-Authenticate", "Authorization")
    } else {
        ("Proxy-Authenticate", "Proxy-Authorization")
    }
}

/// The challenge of `response` to answer: SHA-256 when the server offers it, else the first
/// usable one, else the first one's parse error. `None` when `header` is absent.
pub fn best_challenge(
    response: &crate::Response,
    header: &str,
) -> Option<Result<Challenge, AuthError>> {
    let mut parsed: Vec<Result<Challenge, AuthError>> = response
        .headers
        .get_all(header)
        .map(Challenge::parse)
        .collect();
    if let Some(idx) = parsed.iter().position(|challenge| {
        challenge
            .as_ref()
            .is_ok_and(|challenge| challenge.algorithm == Algorithm::Sha256)
    }) {
        return Some(parsed.swap_remove(idx));
    }
    if let Some(idx) = parsed.iter().position(Result::is_ok) {
        return Some(parsed.swap_remove(idx));
    }
    parsed.into_iter().next()
}

/// Why a challenged request cannot be sent again with credentials.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetryError {
    /// The 401/407 carries no challenge header.
    #[error("{status} without a {header} header")]
    NoChallenge {
        /// The response's status.
        status: u16,
        /// The header that was looked for.
        header: &'static str,
    },
    /// The challenge cannot be answered.
    #[error(transparent)]
    Challenge(#[from] AuthError),
}

/// `request` again after the 401/407 `response`, as RFC 3261 22.2 wants: a fresh branch from
/// `rng`, CSeq + 1, and the digest answer (its cnonce from `rng` too) in `Authorization` or
/// `Proxy-Authorization`.
pub fn authorized_retry<R: rand::RngCore + ?Sized>(
    request: &crate::Request,
    response: &crate::Response,
    credentials: &Credentials,
    rng: &mut R,
) -> Result<crate::Request, RetryError> {
    let (challenge_header, answer_header) = challenge_headers(response.status);
    let challenge = best_challenge(response, challenge_header).ok_or(RetryError::NoChallenge {
        status: response.status,
        header: challenge_header,
    })??;
    let cnonce = crate::transaction::tag_from(rng);
    let value = challenge.answer(
        credentials,
        request.method.as_str(),
        &request.uri,
        &cnonce,
        1,
    );
    let mut retry = request.clone();
    let branch = crate::transaction::branch_from(rng);
    let via = crate::transaction::via_with_branch(
        request.headers.get("Via").unwrap_or_default(),
        &branch,
    );
    let number = request.cseq().map(|cseq| cseq.number).unwrap_or(0);
    for header in &mut retry.headers.0 {
        if header.name.eq_ignore_ascii_case("Via") {
            header.value = via.clone();
            break;
        }
    }
    for header in &mut retry.headers.0 {
        if header.name.eq_ignore_ascii_case("CSeq") {
            header.value = format!("{} {}", number.wrapping_add(1), request.method);
        }
    }
    retry.headers.remove(answer_header);
    retry.headers.push(answer_header, value);
    Ok(retry)
}
