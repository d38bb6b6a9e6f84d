//! Erlang C reference figures for the benchmark: what a site would reach if answered calls
//! arrived at random (a Poisson stream) instead of being paced, and the perfect-foresight
//! ceiling no pacer can pass.
//!
//! Erlang C treats the agents as `servers` identical servers with exponential service; the
//! answered-call stream a predictive dialer makes is not Poisson (the dialer watches its
//! agents), so a good pacer beats this figure. It is printed as the classic yardstick.

/// Erlang B blocking probability, by the stable recursion `B(k) = A B(k-1) / (k + A B(k-1))`.
pub fn erlang_b(servers: u32, offered_erlangs: f64) -> f64 {
    let mut blocking = 1.0;
    for k in 1..=servers {
        blocking = offered_erlangs * blocking / (f64::from(k) + offered_erlangs * blocking);
    }
    blocking
}

/// Erlang C: the chance an arriving call waits at all. 1 when the load reaches the servers.
pub fn erlang_c(servers: u32, offered_erlangs: f64) -> f64 {
    let n = f64::from(servers);
    if offered_erlangs >= n {
        return 1.0;
    }
    let blocking = erlang_b(servers, offered_erlangs);
    n * blocking / (n - offered_erlangs * (1.0 - blocking))
}

/// `P(wait > threshold)` in an M/M/N queue with mean service `service_seconds`.
pub fn wait_exceeds(
    servers: u32,
    offered_erlangs: f64,
    service_seconds: f64,
    threshold_seconds: f64,
) -> f64 {
    let n = f64::from(servers);
    if offered_erlangs >= n {
        return 1.0;
    }
    erlang_c(servers, offered_erlangs)
        * (-(n - offered_erlangs) * threshold_seconds / service_seconds).exp()
}

/// The most load (erlangs) `servers` agents carry with `P(wait > threshold) <= cap`.
pub fn max_load_under_cap(
    servers: u32,
    service_seconds: f64,
    threshold_seconds: f64,
    cap: f64,
) -> f64 {
    let (mut low, mut high) = (0.0, f64::from(servers));
    for _ in 0..60 {
        let middle = (low + high) / 2.0;
        if wait_exceeds(servers, middle, service_seconds, threshold_seconds) <= cap {
            low = middle;
        } else {
            high = middle;
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erlang_c_matches_textbook_values() {
        // Two servers, one erlang: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        // 10 servers, 8 erlangs: C ~ 0.409 (standard tables).
        assert!((erlang_c(10, 8.0) - 0.4092).abs() < 1e-3);
        assert_eq!(erlang_c(5, 5.0), 1.0);
    }

    #[test]
    fn more_agents_carry_a_higher_share_under_the_same_cap() {
        let small = max_load_under_cap(5, 120.0, 2.0, 0.03) / 5.0;
        let large = max_load_under_cap(50, 120.0, 2.0, 0.03) / 50.0;
        assert!(small < large && large < 1.0, "{small} {large}");
        assert!(wait_exceeds(50, large * 50.0, 120.0, 2.0) <= 0.03 + 1e-9);
    }
}
