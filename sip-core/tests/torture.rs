//! RFC 4475 torture messages against the parser.
//!
//! The messages live as raw files under `tests/torture/` (transcribed from RFC 4475; file
//! names are the RFC's test names). Well-formed ones (`valid/`) must parse, and some carry
//! spot checks on what the parser saw; malformed ones (`invalid/`) must be rejected with the
//! reason listed here. Every file is also cut at every length and fed again: never a panic.

use std::path::{Path, PathBuf};

use sip_core::{Message, NameAddr, ParseError, Via, parse};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/torture")
        .join(kind)
}

fn load(kind: &str, name: &str) -> Vec<u8> {
    let path = dir(kind).join(format!("{name}.sip"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn names(kind: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir(kind))
        .expect("torture directory")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sip"))
        .map(|path| {
            path.file_stem()
                .expect("file stem")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_well_formed_torture_message_parses() {
    let names = names("valid");
    assert!(
        names.len() >= 20,
        "only {} valid messages found",
        names.len()
    );
    for name in names {
        let bytes = load("valid", &name);
        if let Err(error) = parse(&bytes) {
            panic!("RFC 4475 {name} is well-formed but was rejected: {error}");
        }
    }
}

#[test]
fn the_short_tortuous_invite_reads_as_intended() {
    let Ok(Message::Request(request)) = parse(&load("valid", "wsinv")) else {
        panic!("wsinv must parse as a request");
    };
    assert_eq!(request.method.as_str(), "INVITE");
    let vias: Vec<Via> = request
        .headers
        .get_all("Via")
        .map(|via| Via::parse(via).expect("via"))
        .collect();
    assert_eq!(vias.len(), 3, "one Via line plus a v: line with two hops");
    assert_eq!(vias[0].host, "192.0.2.2");
    assert_eq!(vias[1].transport, "TCP");
    assert_eq!(vias[1].branch(), Some("z9hG4bK9ikj8"));
    assert_eq!(vias[2].branch(), Some("z9hG4bK30239"));
    let cseq = request.cseq().expect("cseq");
    assert_eq!(cseq.number, 9);
    let from = NameAddr::parse(request.headers.get("From").expect("from")).expect("from");
    assert_eq!(from.tag(), Some("98asjd8"));
    assert_eq!(from.display_name.as_deref(), Some(r#"J Rosenberg \\\""#));
    let to = NameAddr::parse(request.headers.get("To").expect("to")).expect("to");
    assert_eq!(to.tag(), Some("1918181833n"));
    let contact = NameAddr::parse(request.headers.get("Contact").expect("m")).expect("contact");
    assert_eq!(contact.param("q"), Some("0.33"));
    assert_eq!(
        request.headers.get("NewFangledHeader"),
        Some("newfangled value continued newfangled value")
    );
    assert!(request.body.starts_with(b"v=0\r\n"));
    assert!(request.body.ends_with(b"a=rtpmap:31 LPC\r\n"));
}

#[test]
fn unusual_but_legal_forms_are_kept() {
    let Ok(Message::Request(request)) = parse(&load("valid", "intmeth")) else {
        panic!("intmeth must parse");
    };
    assert_eq!(
        request.method.as_str(),
        "!interesting-Method0123456789_*+`.%indeed'~"
    );
    let Ok(Message::Request(request)) = parse(&load("valid", "esc02")) else {
        panic!("esc02 must parse");
    };
    assert_eq!(
        request.method.as_str(),
        "RE%47IST%45R",
        "escapes are not decoded in methods"
    );
    let Ok(Message::Request(request)) = parse(&load("valid", "dblreq")) else {
        panic!("dblreq must parse");
    };
    assert!(
        request.body.is_empty(),
        "octets after Content-Length are not the body"
    );
    let Ok(Message::Response(response)) = parse(&load("valid", "noreason")) else {
        panic!("noreason must parse");
    };
    assert_eq!((response.status, response.reason.as_str()), (100, ""));
    let Ok(Message::Response(response)) = parse(&load("valid", "unreason")) else {
        panic!("unreason must parse");
    };
    assert!(response.reason.ends_with("простое"), "{}", response.reason);
    let Ok(Message::Request(request)) = parse(&load("valid", "longreq")) else {
        panic!("longreq must parse");
    };
    assert_eq!(request.headers.get_all("Via").count(), 33);
    let Ok(Message::Request(request)) = parse(&load("valid", "mpart01")) else {
        panic!("mpart01 must parse");
    };
    assert!(
        request.body.ends_with(b"--++--\r\n"),
        "binary body kept whole"
    );
}

/// What each malformed message must be rejected for.
fn expected_rejection(name: &str) -> fn(&ParseError) -> bool {
    match name {
        "badinv01" => |e| matches!(e, ParseError::Header { name: "Via", .. }),
        "clerr" => |e| matches!(e, ParseError::Truncated { declared: 9999, .. }),
        "ncl" => |e| matches!(e, ParseError::ContentLength(_)),
        "scalar02" | "scalarlg" => |e| matches!(e, ParseError::CSeq(_)),
        "quotbal" => |e| matches!(e, ParseError::Header { name: "To", .. }),
        "ltgtruri" | "lwsruri" | "lwsstart" | "trws" | "escruri" | "bigcode" => {
            |e| matches!(e, ParseError::StartLine(_))
        }
        "regbadct" => |e| {
            matches!(
                e,
                ParseError::Header {
                    name: "Contact",
                    ..
                }
            )
        },
        "badaspec" => |e| matches!(e, ParseError::Header { name: "To", .. }),
        "baddn" => |e| matches!(e, ParseError::Header { name: "From", .. }),
        "badvers" => |e| matches!(e, ParseError::Version(_)),
        "mismatch01" | "mismatch02" => |e| matches!(e, ParseError::CSeqMismatch { .. }),
        "insuf" => |e| matches!(e, ParseError::MissingHeader(_)),
        "multi01" => |e| matches!(e, ParseError::Duplicate(_)),
        "mcl01" => |e| matches!(e, ParseError::Duplicate("Content-Length")),
        other => panic!("invalid/{other}.sip has no expected rejection in this table"),
    }
}

#[test]
fn every_malformed_torture_message_is_rejected_with_its_reason() {
    let names = names("invalid");
    assert!(
        names.len() >= 20,
        "only {} invalid messages found",
        names.len()
    );
    for name in names {
        let bytes = load("invalid", &name);
        match parse(&bytes) {
            Ok(message) => panic!("RFC 4475 {name} is malformed but was accepted: {message:?}"),
            Err(error) => {
                assert!(
                    expected_rejection(&name)(&error),
                    "{name} rejected for the wrong reason: {error}"
                );
                assert!(!error.to_string().is_empty());
            }
        }
    }
}

#[test]
fn no_prefix_or_bit_flip_of_a_torture_message_panics() {
    for kind in ["valid", "invalid"] {
        for name in names(kind) {
            let bytes = load(kind, &name);
            for cut in 0..bytes.len() {
                let _ = parse(&bytes[..cut]);
            }
            for idx in (0..bytes.len()).step_by(7) {
                let mut flipped = bytes.clone();
                flipped[idx] ^= 0x5a;
                let _ = parse(&flipped);
            }
        }
    }
}
