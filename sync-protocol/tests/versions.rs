//! Version negotiation and holding back, on the sans-IO sessions: a hub of this version
//! answers a site of the previous one in its version and sends it a stand-in for what it
//! cannot read; a site speaking the previous version (its hub's) is answered in it; a
//! version outside the range is refused.

use std::time::Instant;

use sync_protocol::session::{HubEvent, HubSession, SessionConfig, SessionError, SiteEvent, SiteSession, SiteStart};
use sync_protocol::*;

fn hello(version: u32) -> Frame {
    Frame::ClientHello(ClientHello { protocol_version: version, site_id: 5, epoch: 1, down_applied: 0, software: "a".into() })
}

fn transmits(hub: &mut HubSession) -> Vec<Frame> {
    std::iter::from_fn(|| hub.poll_transmit()).collect()
}

#[test]
fn a_hub_serves_the_previous_version_and_holds_back_what_it_cannot_read() {
    let now = Instant::now();
    let mut hub = HubSession::new(now, 5, "hub".into(), SessionConfig::default());
    hub.handle_frame(now, hello(2));
    assert!(matches!(hub.poll_event(), Some(HubEvent::Hello { .. })));
    assert_eq!(hub.peer_version(), 2);
    hub.accept(now, None);
    let Some(Frame::ServerHello(answer)) = transmits(&mut hub).into_iter().next() else { panic!("no server hello") };
    assert_eq!(answer.protocol_version, 2);
    assert!(matches!(hub.poll_event(), Some(HubEvent::FetchDown { after_seq: 0, .. })));

    let readable = DownEvent::LinkSettings(LinkSettings { version: 1, recording_upload_bytes_per_sec: None });
    let newer = DownEvent::SiteProfile(SiteProfile { version: 1, name: "x".into() });
    let entries = vec![
        DownEntry { seq: 1, event: readable.clone() },
        DownEntry { seq: 2, event: newer.clone() },
        DownEntry { seq: 3, event: readable.clone() },
    ];
    hub.down_fetched(now, entries);
    // The held entry is reported before its stand-in can be sent.
    assert_eq!(hub.poll_event(), Some(HubEvent::HeldBack(DownEntry { seq: 2, event: newer.clone() })));
    let sent = transmits(&mut hub);
    assert_eq!(
        sent,
        vec![
            Frame::Down(DownEntry { seq: 1, event: readable.clone() }),
            Frame::Down(DownEntry { seq: 2, event: DownEvent::held_back_stand_in() }),
            Frame::Down(DownEntry { seq: 3, event: readable.clone() }),
        ]
    );
    assert!(sent.iter().all(|frame| frame.needs_version() <= 2));

    // A site of this version gets the event itself.
    let mut current = HubSession::new(now, 5, "hub".into(), SessionConfig::default());
    current.handle_frame(now, hello(PROTOCOL_VERSION));
    current.accept(now, None);
    while current.poll_event().is_some() {}
    current.down_fetched(now, vec![DownEntry { seq: 1, event: newer.clone() }]);
    assert_eq!(current.poll_event().filter(|e| matches!(e, HubEvent::HeldBack(_))), None);
    assert!(transmits(&mut current).contains(&Frame::Down(DownEntry { seq: 1, event: newer })));
}

#[test]
fn versions_outside_the_range_are_refused() {
    let now = Instant::now();
    for version in [MIN_PROTOCOL_VERSION - 1, PROTOCOL_VERSION + 1] {
        let mut hub = HubSession::new(now, 5, "hub".into(), SessionConfig::default());
        hub.handle_frame(now, hello(version));
        assert!(matches!(hub.poll_event(), Some(HubEvent::Closed(SessionError::VersionMismatch { theirs, .. })) if theirs == version));
    }
}

#[test]
fn a_site_speaks_the_version_its_hub_negotiated() {
    let now = Instant::now();
    let start = SiteStart { site_id: 5, epoch: 1, down_applied: 0, software: "a".into() };
    let mut site = SiteSession::speaking(now, start.clone(), SessionConfig::default(), 2);
    assert_eq!(site.poll_transmit(), Some(hello(2)));
    site.handle_frame(now, Frame::ServerHello(ServerHello { protocol_version: 2, up_committed: None, software: "h".into() }));
    assert!(matches!(site.poll_event(), Some(SiteEvent::Established { .. })));
    assert!(site.is_established());

    // A hub answering in another version than the one offered is refused.
    let mut site = SiteSession::speaking(now, start, SessionConfig::default(), 2);
    site.poll_transmit();
    site.handle_frame(now, Frame::ServerHello(ServerHello { protocol_version: 3, up_committed: None, software: "h".into() }));
    assert!(matches!(site.poll_event(), Some(SiteEvent::Closed(SessionError::VersionMismatch { ours: 2, theirs: 3 }))));
}
