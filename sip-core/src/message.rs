//! SIP messages: parsing from bytes, building, and serializing back to bytes.
//!
//! A [`Message`] is either a [`Request`] or a [`Response`]; both carry [`Headers`] (an ordered
//! list, names normalised so compact forms like `v:` read as `Via`) and a raw body. Parsing
//! checks what every later step relies on (start line, the mandatory headers, a sane
//! `Content-Length`) and returns a [`ParseError`] naming the defect; it never panics, whatever
//! the bytes. Helpers parse the structured headers the stack needs: [`Via`], [`NameAddr`]
//! (From/To/Contact), [`SipUri`] and [`CSeq`].

use std::fmt;

mod header_values;

pub use header_values::{CSeq, HeaderError, NameAddr, SipUri, Via};

/// Largest message accepted; a UDP datagram cannot be larger and a bigger TCP frame is abuse.
pub const MAX_MESSAGE_BYTES: usize = 65_535;

/// A SIP request method.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    /// Any other token; kept so a proxy-like peer's methods can be answered with 501.
    Other(String),
}

impl Method {
    /// The method token as written on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Other(token) => token,
        }
    }

    /// Parses a method token; methods are case-sensitive (RFC 3261 section 7.1).
    pub fn from_token(token: &str) -> Method {
        match token {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "REGISTER" => Method::Register,
            "OPTIONS" => Method::Options,
            "INFO" => Method::Info,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "MESSAGE" => Method::Message,
            other => Method::Other(other.to_string()),
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One header line, name normalised to its long canonical form when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// The ordered header list of a message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    /// The first value of `name` (case-insensitive), if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_str())
    }

    /// Every value of `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value.as_str())
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Removes every line named `name`.
    pub fn remove(&mut self, name: &str) {
        self.0
            .retain(|header| !header.name.eq_ignore_ascii_case(name));
    }

    /// Replaces every line named `name` with one line.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// The message's headers, whichever kind it is.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(request) => &request.headers,
            Message::Response(response) => &response.headers,
        }
    }
}

/// Why bytes are not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace (a keep-alive CRLF is reported this way so callers can skip it).
    #[error("empty packet (keep-alive or stray whitespace)")]
    Empty,
    /// Larger than any SIP datagram may be.
    #[error("message of {0} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit")]
    TooLarge(usize),
    /// No blank line separates the headers from the body.
    #[error("no end of headers (CRLF CRLF) found; the message is truncated or not SIP")]
    NoHeaderEnd,
    /// The header section is not UTF-8 text.
    #[error("header section is not UTF-8 text")]
    NotText,
    /// The first line is neither `METHOD uri SIP/2.0` nor `SIP/2.0 code reason`.
    #[error("bad start line {0:?}: expected `METHOD uri SIP/2.0` or `SIP/2.0 CODE reason`")]
    StartLine(String),
    /// A header line without a colon or with an empty name.
    #[error("bad header line {0:?}: expected `Name: value`")]
    HeaderLine(String),
    /// A header every SIP message must carry is absent.
    #[error("missing mandatory header {0}")]
    MissingHeader(&'static str),
    /// Content-Length is not a number.
    #[error("Content-Length {0:?} is not a number")]
    ContentLength(String),
    /// Content-Length promises more body than arrived.
    #[error("Content-Length says {declared} bytes but only {available} arrived")]
    Truncated { declared: usize, available: usize },
    /// CSeq is not `number METHOD`.
    #[error("bad CSeq {0:?}: expected `number METHOD`")]
    CSeq(String),
    /// The start line names a SIP version other than 2.0 (a UAS answers 505).
    #[error("unsupported SIP version {0:?}: only SIP/2.0 is spoken")]
    Version(String),
    /// A request's CSeq method differs from its start-line method (RFC 3261 section 8.1.1.5).
    #[error("CSeq method {cseq} does not match the request method {method}")]
    CSeqMismatch { method: String, cseq: String },
    /// A header that may appear only once appears again (RFC 4475 `multi01`, `mcl01`).
    #[error("header {0} appears more than once but allows one value")]
    Duplicate(&'static str),
    /// Max-Forwards is not a number in 0..=255.
    #[error("Max-Forwards {0:?} is not a number from 0 to 255")]
    MaxForwards(String),
    /// A structured header the stack relies on (Via, From, To, Contact) does not parse.
    #[error("bad {name} header: {reason}")]
    Header {
        name: &'static str,
        reason: HeaderError,
    },
}

/// Header long names for the compact forms of RFC 3261 section 7.3.3 (and common extensions).
fn canonical_name(name: &str) -> String {
    let long = match name.to_ascii_lowercase().as_str() {
        "i" | "call-id" => "Call-ID",
        "m" | "contact" => "Contact",
        "e" | "content-encoding" => "Content-Encoding",
        "l" | "content-length" => "Content-Length",
        "c" | "content-type" => "Content-Type",
        "f" | "from" => "From",
        "k" | "supported" => "Supported",
        "s" | "subject" => "Subject",
        "t" | "to" => "To",
        "v" | "via" => "Via",
        "cseq" => "CSeq",
        "www-authenticate" => "WWW-Authenticate",
        "proxy-authenticate" => "Proxy-Authenticate",
        "authorization" => "Authorization",
        "proxy-authorization" => "Proxy-Authorization",
        "expires" => "Expires",
        "max-forwards" => "Max-Forwards",
        _ => return name.to_string(),
    };
    long.to_string()
}

/// Splits a header value at commas that are outside quotes and angle brackets.
pub fn split_top_level_commas(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut angle_depth = 0u32;
    let mut escaped = false;
    let mut start = 0;
    for (idx, ch) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match ch {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => angle_depth += 1,
            '>' if !in_quotes => angle_depth = angle_depth.saturating_sub(1),
            ',' if !in_quotes && angle_depth == 0 => {
                parts.push(value[start..idx].trim());
                start = idx + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.into_iter().filter(|part| !part.is_empty()).collect()
}

fn find_header_end(bytes: &[u8]) -> Option<(usize, usize)> {
    // Accept bare LF line endings too: some broken UAs send them and RFC 3261 asks for leniency.
    let crlf = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .map(|pos| (pos, pos + 4));
    let lf = bytes
        .windows(2)
        .position(|window| window == b"\n\n")
        .map(|pos| (pos, pos + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// Parses one SIP message from a datagram (or a framed stream chunk).
pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    let leading = bytes
        .iter()
        .take_while(|byte| byte.is_ascii_whitespace())
        .count();
    let bytes = &bytes[leading..];
    if bytes.is_empty() {
        return Err(ParseError::Empty);
    }
    let (head_end, body_start) = find_header_end(bytes).ok_or(ParseError::NoHeaderEnd)?;
    let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| ParseError::NotText)?;

    let mut lines: Vec<String> = Vec::new();
    for raw_line in head.split('\n') {
        let line = raw_line.strip_suffix('\r').unwrap_or(raw_line);
        // Header folding: a line starting with whitespace continues the previous one.
        if (line.starts_with(' ') || line.starts_with('\t')) && !lines.is_empty() {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
            continue;
        }
        lines.push(line.to_string());
    }
    let mut line_iter = lines.into_iter();
    let start_line = line_iter.next().unwrap_or_default();
    let start = parse_start_line(&start_line)?;

    let mut headers = Headers::default();
    for line in line_iter {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ParseError::HeaderLine(line));
        };
        let name = name.trim();
        if name.is_empty() || name.contains(' ') {
            return Err(ParseError::HeaderLine(line));
        }
        let name = canonical_name(name);
        let value = value.trim();
        if name == "Via" {
            // One Via line may carry several hops; store one entry per hop so the top one is first.
            for hop in split_top_level_commas(value) {
                headers.push("Via", hop);
            }
        } else {
            headers.push(name, value);
        }
    }

    for mandatory in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if headers.get(mandatory).is_none() {
            return Err(ParseError::MissingHeader(mandatory));
        }
    }
    validate_headers(&headers)?;
    if let (StartLine::Request { method, .. }, Some(cseq)) = (&start, headers.get("CSeq")) {
        let cseq = CSeq::parse(cseq)?;
        if &cseq.method != method {
            return Err(ParseError::CSeqMismatch {
                method: method.to_string(),
                cseq: cseq.method.to_string(),
            });
        }
    }

    let rest = &bytes[body_start..];
    let body = match headers.get("Content-Length") {
        Some(text) => {
            let declared: usize = text
                .trim()
                .parse()
                .map_err(|_| ParseError::ContentLength(text.to_string()))?;
            if declared > rest.len() {
                return Err(ParseError::Truncated {
                    declared,
                    available: rest.len(),
                });
            }
            rest[..declared].to_vec()
        }
        None => rest.to_vec(),
    };

    Ok(match start {
        StartLine::Response { status, reason } => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
        StartLine::Request { method, uri } => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
    })
}

/// Checks what later layers take for granted: single-valued headers appear once, scalars
/// are in range, and the structured headers parse (RFC 4475 section 3.1.2).
fn validate_headers(headers: &Headers) -> Result<(), ParseError> {
    for single in [
        "Call-ID",
        "CSeq",
        "From",
        "To",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
    ] {
        if headers.get_all(single).nth(1).is_some() {
            return Err(ParseError::Duplicate(single));
        }
    }
    if let Some(cseq) = headers.get("CSeq") {
        CSeq::parse(cseq)?;
    }
    if let Some(max_forwards) = headers.get("Max-Forwards")
        && max_forwards.trim().parse::<u8>().is_err()
    {
        return Err(ParseError::MaxForwards(max_forwards.to_string()));
    }
    for via in headers.get_all("Via") {
        Via::parse(via).map_err(|reason| ParseError::Header {
            name: "Via",
            reason,
        })?;
    }
    for (name, label) in [("From", "From"), ("To", "To")] {
        if let Some(value) = headers.get(name) {
            NameAddr::parse(value).map_err(|reason| ParseError::Header {
                name: label,
                reason,
            })?;
        }
    }
    for contact in headers.get_all("Contact") {
        if contact.trim() == "*" {
            continue;
        }
        for value in split_top_level_commas(contact) {
            NameAddr::parse(value).map_err(|reason| ParseError::Header {
                name: "Contact",
                reason,
            })?;
        }
    }
    Ok(())
}

/// A Request-URI is `scheme:rest` with a token scheme and no brackets or whitespace; a SIP
/// URI there must not carry `?headers` after the host (RFC 4475 `ltgtruri`, `escruri`).
fn request_uri_ok(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.starts_with(|ch: char| ch.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "+-.".contains(ch));
    if !scheme_ok || rest.is_empty() || uri.contains(['<', '>']) {
        return false;
    }
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let host_part = rest.rsplit_once('@').map(|(_, host)| host).unwrap_or(rest);
        return !host_part.contains('?');
    }
    true
}

enum StartLine {
    Request { method: Method, uri: String },
    Response { status: u16, reason: String },
}

fn parse_start_line(start_line: &str) -> Result<StartLine, ParseError> {
    let err = || ParseError::StartLine(start_line.to_string());
    if start_line.starts_with("SIP/") && !start_line.starts_with("SIP/2.0 ") {
        let version = start_line.split(' ').next().unwrap_or_default();
        return Err(ParseError::Version(version.to_string()));
    }
    if let Some(after_version) = start_line.strip_prefix("SIP/2.0 ") {
        let (code, reason) = after_version.split_once(' ').unwrap_or((after_version, ""));
        let status: u16 = code.parse().map_err(|_| err())?;
        if !(100..=699).contains(&status) {
            return Err(err());
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.to_string(),
        });
    }
    let mut parts = start_line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err());
    };
    let method_is_token = !method.is_empty()
        && method
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&byte));
    if version.starts_with("SIP/") && version != "SIP/2.0" && method_is_token {
        return Err(ParseError::Version(version.to_string()));
    }
    if version != "SIP/2.0" || !method_is_token || !request_uri_ok(uri) {
        return Err(err());
    }
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri: uri.to_string(),
    })
}

fn write_headers_and_body(out: &mut Vec<u8>, headers: &Headers, body: &[u8]) {
    for header in &headers.0 {
        if header.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        out.extend_from_slice(header.name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Content-Length is always computed here so it can never disagree with the body.
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
}

impl Request {
    /// A request with no headers yet.
    pub fn new(method: Method, uri: impl Into<String>) -> Request {
        Request {
            method,
            uri: uri.into(),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    /// Builder-style header append.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Request {
        self.headers.push(name, value);
        self
    }

    /// Serializes to wire bytes with a correct Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} SIP/2.0\r\n", self.method, self.uri).into_bytes();
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    /// The parsed CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.headers.get("CSeq").unwrap_or_default())
    }

    /// The Call-ID value (empty if absent; [`parse`] guarantees presence).
    pub fn call_id(&self) -> &str {
        self.headers.get("Call-ID").unwrap_or_default()
    }

    /// The topmost Via, parsed.
    pub fn top_via(&self) -> Option<Via> {
        self.headers
            .get("Via")
            .and_then(|value| Via::parse(value).ok())
    }
}

impl Response {
    /// A response with no headers.
    pub fn new(status: u16, reason: impl Into<String>) -> Response {
        Response {
            status,
            reason: reason.into(),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    /// A response to `request` with the headers RFC 3261 section 8.2.6 copies (all Vias,
    /// From, To, Call-ID, CSeq); `to_tag` is added to To when the request's To has none.
    pub fn to_request(
        request: &Request,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Response {
        let mut response = Response::new(status, reason);
        for via in request.headers.get_all("Via") {
            response.headers.push("Via", via);
        }
        for name in ["From", "To", "Call-ID", "CSeq"] {
            if let Some(value) = request.headers.get(name) {
                let mut value = value.to_string();
                if name == "To" {
                    let has_tag = NameAddr::parse(&value)
                        .map(|addr| addr.tag().is_some())
                        .unwrap_or(false);
                    if let (false, Some(tag)) = (has_tag, to_tag) {
                        value = format!("{value};tag={tag}");
                    }
                }
                response.headers.push(name, value);
            }
        }
        response
    }

    /// Builder-style header append.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Response {
        self.headers.push(name, value);
        self
    }

    /// Serializes to wire bytes with a correct Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {} {}\r\n", self.status, self.reason).into_bytes();
        write_headers_and_body(&mut out, &self.headers, &self.body);
        out
    }

    /// The parsed CSeq.
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        CSeq::parse(self.headers.get("CSeq").unwrap_or_default())
    }

    /// The Call-ID value.
    pub fn call_id(&self) -> &str {
        self.headers.get("Call-ID").unwrap_or_default()
    }

    /// The topmost Via, parsed.
    pub fn top_via(&self) -> Option<Via> {
        self.headers
            .get("Via")
            .and_then(|value| Via::parse(value).ok())
    }
}
