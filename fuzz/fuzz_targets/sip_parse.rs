//! Fuzz target: the SIP parser and the structured-header parsers must never panic.
//!
//! Feeds arbitrary bytes to `sip_core::parse`; when they parse, every header the stack later
//! reads (Via, From/To/Contact, CSeq, the digest headers, SDP bodies) is parsed too, and the
//! message is serialized and parsed again, which must succeed (what we write we can read).
//! Seeds: `sip-core/tests/torture/` (RFC 4475). See `docs/sip-fuzzing.md`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::auth::{Authorization, Challenge};
use sip_core::sdp::SessionDescription;
use sip_core::{Message, NameAddr, SipUri, Via, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = parse(data) else { return };
    let headers = message.headers();
    for via in headers.get_all("Via") {
        let _ = Via::parse(via);
    }
    for name in ["From", "To", "Contact"] {
        for value in headers.get_all(name) {
            if let Ok(addr) = NameAddr::parse(value) {
                let _ = SipUri::parse(&addr.uri);
            }
        }
    }
    for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
        for value in headers.get_all(name) {
            let _ = Challenge::parse(value);
        }
    }
    for name in ["Authorization", "Proxy-Authorization"] {
        for value in headers.get_all(name) {
            let _ = Authorization::parse(value);
        }
    }
    let bytes = match &message {
        Message::Request(request) => {
            let _ = SipUri::parse(&request.uri);
            let _ = SessionDescription::parse(&request.body);
            request.to_bytes()
        }
        Message::Response(response) => {
            let _ = SessionDescription::parse(&response.body);
            response.to_bytes()
        }
    };
    if let Err(error) = parse(&bytes) {
        panic!("re-parsing our own serialization failed: {error}");
    }
});
