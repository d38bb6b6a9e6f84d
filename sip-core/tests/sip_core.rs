//! Data-driven tests of the sans-IO SIP core: parsing, serializing, SDP, digest, timers.

use std::time::{Duration, Instant};

use expect_test::{Expect, expect};
use proptest::prelude::*;
use sip_core::auth::{
    Algorithm, Authorization, Challenge, Credentials, NonceCheck, NonceIssuer, challenge_header,
};
use sip_core::sdp::{self, Codec, SessionDescription};
use sip_core::transaction::{RetransmitTimer, T1, T2, TimerAction};
use sip_core::{Message, NameAddr, SipUri, Via, parse};

/// Parses `input` and renders what the parser saw, compared inline.
fn check(input: &str, expect: Expect) {
    let rendered = match parse(input.as_bytes()) {
        Ok(Message::Request(request)) => {
            let mut out = format!("request {} {}\n", request.method, request.uri);
            for header in &request.headers.0 {
                out.push_str(&format!("  {}: {}\n", header.name, header.value));
            }
            out.push_str(&format!(
                "  body {:?}\n",
                String::from_utf8_lossy(&request.body)
            ));
            out
        }
        Ok(Message::Response(response)) => {
            let mut out = format!("response {} {}\n", response.status, response.reason);
            for header in &response.headers.0 {
                out.push_str(&format!("  {}: {}\n", header.name, header.value));
            }
            out.push_str(&format!(
                "  body {:?}\n",
                String::from_utf8_lossy(&response.body)
            ));
            out
        }
        Err(error) => format!("error: {error}\n"),
    };
    expect.assert_eq(&rendered);
}

#[test]
fn parses_request_with_compact_headers_and_multi_via() {
    check(
        "INVITE sip:13800138000@carrier.example SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb\r\n\
f: <sip:100@box>;tag=abc\r\n\
t: <sip:13800138000@carrier.example>\r\n\
i: call-1@box\r\n\
CSeq: 1 INVITE\r\n\
m: <sip:100@10.0.0.1:5060>\r\n\
c: application/sdp\r\n\
l: 4\r\n\
\r\n\
v=0\nEXTRA",
        expect![[r#"
            request INVITE sip:13800138000@carrier.example
              Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa
              Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKb
              From: <sip:100@box>;tag=abc
              To: <sip:13800138000@carrier.example>
              Call-ID: call-1@box
              CSeq: 1 INVITE
              Contact: <sip:100@10.0.0.1:5060>
              Content-Type: application/sdp
              Content-Length: 4
              body "v=0\n"
        "#]],
    );
}

#[test]
fn parses_response_and_folded_header() {
    check(
        "SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\n  ;tag=2\r\nCall-ID: x\r\nCSeq: 7 INVITE\r\n\r\n",
        expect![[r#"
            response 486 Busy Here
              Via: SIP/2.0/UDP h;branch=z9hG4bK1
              From: <sip:a@h>;tag=1
              To: <sip:b@h> ;tag=2
              Call-ID: x
              CSeq: 7 INVITE
              body ""
        "#]],
    );
}

#[test]
fn rejects_malformed_messages_with_reasons() {
    check(
        "",
        expect![[r#"
        error: empty packet (keep-alive or stray whitespace)
    "#]],
    );
    check(
        "hello world",
        expect![[r#"
        error: no end of headers (CRLF CRLF) found; the message is truncated or not SIP
    "#]],
    );
    check(
        "INVITE sip:a@b HTTP/1.1\r\nVia: x\r\n\r\n",
        expect![[r#"
        error: bad start line "INVITE sip:a@b HTTP/1.1": expected `METHOD uri SIP/2.0` or `SIP/2.0 CODE reason`
    "#]],
    );
    check(
        "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCSeq: 1 BYE\r\n\r\n",
        expect![[r#"
        error: missing mandatory header Call-ID
    "#]],
    );
    check(
        "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: one BYE\r\n\r\n",
        expect![[r#"
        error: bad CSeq "one BYE": expected `number METHOD`
    "#]],
    );
    check(
        "BYE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\nContent-Length: 50\r\n\r\nshort",
        expect![[r#"
        error: Content-Length says 50 bytes but only 5 arrived
    "#]],
    );
    check(
        "SIP/2.0 99 Odd\r\nVia: SIP/2.0/UDP h\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 BYE\r\n\r\n",
        expect![[r#"
        error: bad start line "SIP/2.0 99 Odd": expected `METHOD uri SIP/2.0` or `SIP/2.0 CODE reason`
    "#]],
    );
}

#[test]
fn serialize_round_trips_and_fixes_content_length() {
    let text = "OPTIONS sip:box SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:box>\r\nCall-ID: c\r\nCSeq: 2 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    let Ok(Message::Request(mut request)) = parse(text.as_bytes()) else {
        panic!("valid request")
    };
    request.body = b"abc".to_vec();
    let bytes = request.to_bytes();
    let Ok(Message::Request(again)) = parse(&bytes) else {
        panic!("serialized request parses")
    };
    assert_eq!(again.body, b"abc");
    assert_eq!(again.headers.get("Content-Length"), Some("3"));
    assert_eq!(again.cseq().map(|cseq| cseq.number), Ok(2));
}

#[test]
fn structured_headers() {
    let via = Via::parse("SIP/2.0/udp 127.0.0.1:5070;branch=z9hG4bKabc;rport").expect("via");
    assert_eq!(
        (via.transport.as_str(), via.host.as_str(), via.port),
        ("UDP", "127.0.0.1", Some(5070))
    );
    assert_eq!(via.branch(), Some("z9hG4bKabc"));
    assert_eq!(via.param("rport"), Some(""));
    let addr = NameAddr::parse(
        "\"Agent 1001\" <sip:1001@192.0.2.5:5062;transport=udp>;tag=xyz;expires=60",
    )
    .expect("addr");
    assert_eq!(addr.display_name.as_deref(), Some("Agent 1001"));
    assert_eq!(addr.tag(), Some("xyz"));
    assert_eq!(addr.param("expires"), Some("60"));
    let uri = SipUri::parse(&addr.uri).expect("uri");
    assert_eq!(uri.user.as_deref(), Some("1001"));
    assert_eq!(
        uri.socket_addr(),
        Some("192.0.2.5:5062".parse().expect("addr"))
    );
    let bare = NameAddr::parse("sip:1002@[::1]:5080;expires=30").expect("bare");
    assert_eq!(bare.param("expires"), Some("30"));
    assert_eq!(
        SipUri::parse(&bare.uri).expect("uri").socket_addr(),
        Some("[::1]:5080".parse().expect("addr"))
    );
    assert!(SipUri::parse("http://x").is_err());
    assert!(Via::parse("SIP/2.0 nohost").is_err());
}

#[test]
fn sdp_offer_and_answer() {
    let offer = sdp::build_offer("127.0.0.1".parse().expect("ip"), 40000, 7);
    let parsed = SessionDescription::parse(&offer).expect("own offer parses");
    let path = parsed
        .audio_path(&[Codec::Pcma, Codec::Pcmu])
        .expect("path");
    assert_eq!(path.codec, Codec::Pcmu, "the offerer's order wins");
    assert_eq!(path.remote, "127.0.0.1:40000".parse().expect("addr"));
    assert_eq!(path.telephone_event, Some(101));

    let answer = b"v=0\r\no=- 1 1 IN IP4 10.1.1.1\r\ns=-\r\nc=IN IP4 10.1.1.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8 101\r\nc=IN IP4 10.1.1.2\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";
    let path = SessionDescription::parse(answer)
        .expect("answer")
        .audio_path(&[Codec::Pcmu, Codec::Pcma])
        .expect("path");
    assert_eq!(path.codec, Codec::Pcma);
    assert_eq!(
        path.remote,
        "10.1.1.2:6000".parse().expect("addr"),
        "media-level c= wins"
    );

    let g729 = b"v=0\r\nc=IN IP4 10.1.1.1\r\nm=audio 6000 RTP/AVP 18\r\n";
    let error = SessionDescription::parse(g729)
        .expect("parses")
        .audio_path(&[Codec::Pcmu])
        .expect_err("no codec");
    expect![[
        r#"SDP audio offers none of PCMU/PCMA (formats [18]); answer 488 Not Acceptable Here"#
    ]]
    .assert_eq(&error.to_string());
    assert!(SessionDescription::parse(b"v=0\r\nc=IN IP4 nonsense\r\n").is_err());
}

#[test]
fn digest_md5_matches_rfc2617_vector() {
    let challenge = Challenge::parse(
        "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
    )
    .expect("challenge");
    let credentials = Credentials {
        username: "Mufasa".into(),
        password: "Circle Of Life".into(),
    };
    let value = challenge.answer(&credentials, "GET", "/dir/index.html", "0a4f113b", 1);
    assert!(
        value.contains("response=\"6629fae49393a05397450978507c4ef1\""),
        "{value}"
    );
    let authorization = Authorization::parse(&value).expect("own answer parses");
    assert!(authorization.verify("GET", "Circle Of Life"));
    assert!(!authorization.verify("GET", "wrong"));
    assert!(!authorization.verify("POST", "Circle Of Life"));
}

#[test]
fn digest_sha256_matches_rfc7616_vector() {
    let challenge = Challenge::parse(
        "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
    )
    .expect("challenge");
    assert_eq!(challenge.algorithm, Algorithm::Sha256);
    let credentials = Credentials {
        username: "Mufasa".into(),
        password: "Circle of Life".into(),
    };
    let value = challenge.answer(
        &credentials,
        "GET",
        "/dir/index.html",
        "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        1,
    );
    assert!(
        value.contains(
            "response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\""
        ),
        "{value}"
    );
    assert!(
        Authorization::parse(&value)
            .expect("parses")
            .verify("GET", "Circle of Life")
    );
    assert!(Challenge::parse("Basic realm=x").is_err());
    assert!(Challenge::parse("Digest realm=\"x\", nonce=\"y\", algorithm=MD5-sess").is_err());
}

/// A linear congruential generator: issuers seeded apart hold different secrets, and the
/// test needs no OS randomness.
struct Lcg(u64);

impl rand::RngCore for Lcg {
    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        self.0
    }

    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
    }
}

#[test]
fn registrar_nonces_expire_and_resist_forgery() {
    let issuer = NonceIssuer::from_rng(&mut Lcg(1));
    let nonce = issuer.issue(1_000);
    assert_eq!(issuer.check(&nonce, 1_010, 300), NonceCheck::Valid);
    assert_eq!(issuer.check(&nonce, 2_000, 300), NonceCheck::Stale);
    assert_eq!(
        NonceIssuer::from_rng(&mut Lcg(2)).check(&nonce, 1_010, 300),
        NonceCheck::Invalid
    );
    assert_eq!(
        issuer.check("3e8.deadbeef", 1_010, 300),
        NonceCheck::Invalid
    );
    let header = challenge_header("outpost", &nonce, Algorithm::Md5, true);
    let parsed = Challenge::parse(&header).expect("own challenge parses");
    assert!(parsed.stale && parsed.qop_auth);
}

#[test]
fn retransmission_timers_follow_rfc3261() {
    assert_eq!(RetransmitTimer::interval_after(true, 1), T1);
    assert_eq!(RetransmitTimer::interval_after(true, 4), T1 * 8);
    assert_eq!(RetransmitTimer::interval_after(false, 6), T2);
    let start = Instant::now();
    let mut timer = RetransmitTimer::new(start, false);
    assert_eq!(timer.poll(start), TimerAction::WaitUntil(start + T1));
    assert_eq!(timer.poll(start + T1), TimerAction::Retransmit);
    assert_eq!(
        timer.poll(start + T1),
        TimerAction::WaitUntil(start + T1 * 3)
    );
    let mut n_retransmits = 1; // the one at T1 above
    let mut now = start;
    loop {
        now += Duration::from_millis(100);
        match timer.poll(now) {
            TimerAction::Retransmit => n_retransmits += 1,
            TimerAction::WaitUntil(_) => {}
            TimerAction::GiveUp => break,
        }
    }
    assert_eq!(now - start, Duration::from_secs(32));
    assert_eq!(
        n_retransmits, 10,
        "E doubles to T2 then repeats every 4 s until F"
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse(&bytes);
        let _ = SessionDescription::parse(&bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = Challenge::parse(&text);
        let _ = Authorization::parse(&text);
        let _ = NameAddr::parse(&text);
        let _ = Via::parse(&text);
        let _ = SipUri::parse(&text);
    }

    #[test]
    fn mutated_messages_never_panic(cut in 0usize..400, flip in 0usize..400, byte in any::<u8>()) {
        let mut bytes = b"INVITE sip:1@h SIP/2.0\r\nVia: SIP/2.0/UDP h:1;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:1@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 30\r\n\r\nv=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 1 RTP/AVP 0\r\n".to_vec();
        let flip = flip % bytes.len();
        bytes[flip] = byte;
        bytes.truncate(cut.min(bytes.len()));
        if let Ok(Message::Request(request)) = parse(&bytes) {
            let _ = SessionDescription::parse(&request.body);
            let _ = parse(&request.to_bytes());
        }
    }
}
