//! Free loopback ports for servers a test is about to start.
//!
//! The operating system picks a free port for a socket bound to port 0; the socket is then
//! closed and the number handed out. Another process could take the port in between, which on
//! a test machine is rare enough to accept: the alternative (passing bound sockets into every
//! program, SIPp included) is not available for external programs.

use std::net::{Ipv4Addr, TcpListener, UdpSocket};

/// A UDP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// If the loopback interface cannot bind any UDP socket: no network test can run then.
pub fn free_udp_port() -> u16 {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|error| panic!("cannot bind a UDP socket on 127.0.0.1: {error}"));
    socket
        .local_addr()
        .unwrap_or_else(|error| panic!("bound UDP socket has no local address: {error}"))
        .port()
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// # Panics
/// If the loopback interface cannot bind any TCP socket: no network test can run then.
pub fn free_tcp_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|error| panic!("cannot bind a TCP listener on 127.0.0.1: {error}"));
    listener
        .local_addr()
        .unwrap_or_else(|error| panic!("bound TCP listener has no local address: {error}"))
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_bindable_after_being_handed_out() {
        let udp_port = free_udp_port();
        assert_ne!(udp_port, 0);
        UdpSocket::bind((Ipv4Addr::LOCALHOST, udp_port)).expect("handed-out UDP port binds");
        let tcp_port = free_tcp_port();
        assert_ne!(tcp_port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, tcp_port)).expect("handed-out TCP port binds");
    }
}
