//! Free loopback ports for servers a test is about to start (SIPp, the hub, the appliance).
//!
//! A port is handed out only once per test process, from 20000-32767: below Linux's
//! ephemeral range (32768-60999), where sockets bound to port 0 get theirs. So a port given to
//! SIPp can be taken neither by another test of the same binary asking again, nor by the RTP
//! or client sockets the code under test binds with port 0 meanwhile; both happened with the
//! "bind port 0, close, hand out" way. Each process starts at its own offset, so two test
//! processes at once rarely meet, and every port is checked free (UDP and TCP, since SIP
//! listens on both) before it is handed out.
//!
//! Ports go out in blocks of four, the first of each handed out and the three above it kept
//! free: SIPp given a media port `-mp N` also binds N+2 (its video port), and RTP peers use
//! N+1 for RTCP, so neighbours handed to the next SIPp would collide.
//!
//! Hardware and appliance tests include this file with `#[path]`, so there is one allocator.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};

const LOWEST: u32 = 20_000;
const BLOCK: u32 = 4;
/// Blocks between 20000 and 32767.
const SPAN: u32 = (32_768 - LOWEST) / BLOCK;

static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

fn next_candidate() -> u16 {
    let start = std::process::id().wrapping_mul(7919) % SPAN;
    // The first caller moves the counter from "unset" to this process's start.
    let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    (LOWEST + (n % SPAN) * BLOCK) as u16
}

fn free_port() -> u16 {
    for _ in 0..SPAN {
        let port = next_candidate();
        let udp: Result<Vec<UdpSocket>, _> =
            (port..port + BLOCK as u16).map(|port| UdpSocket::bind((Ipv4Addr::LOCALHOST, port))).collect();
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, port));
        if udp.is_ok() && tcp.is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 between {LOWEST} and 32767");
}

/// A UDP port on 127.0.0.1, free now and never handed out before in this process (its TCP
/// twin is free too).
///
/// # Panics
/// If no port in 20000-32767 can be bound: no network test can run then.
pub fn free_udp_port() -> u16 {
    free_port()
}

/// A TCP port on 127.0.0.1, free now and never handed out before in this process.
///
/// # Panics
/// As [`free_udp_port`].
pub fn free_tcp_port() -> u16 {
    free_port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable_unique_and_outside_the_ephemeral_range() {
        let udp_port = free_udp_port();
        UdpSocket::bind((Ipv4Addr::LOCALHOST, udp_port)).expect("handed-out UDP port binds");
        let tcp_port = free_tcp_port();
        TcpListener::bind((Ipv4Addr::LOCALHOST, tcp_port)).expect("handed-out TCP port binds");
        let more: std::collections::HashSet<u16> = (0..200).map(|_| free_udp_port()).collect();
        assert_eq!(more.len(), 200, "no port is handed out twice");
        assert!(more.iter().all(|port| port % 4 == 0), "each port starts a block of four");
        assert!(more.iter().chain([&udp_port, &tcp_port]).all(|port| (20_000..32_768).contains(port)));
    }
}
