//! A call leg's audio quality as the box receives it: packet loss and interarrival jitter
//! counted the way RFC 3550 (appendix A.1, A.3, A.8) counts them for an RTCP report block,
//! and an estimated MOS from the E-model (ITU-T G.107), simplified for G.711.
//!
//! **Loss.** Expected packets are the extended highest sequence number less the first one,
//! plus one; lost is expected less received (duplicates can make it negative: floored at 0).
//!
//! **Jitter.** For each packet, D = (arrival − RTP timestamp) difference to the previous
//! packet, in timestamp units; J += (|D| − J) / 16. Reported in milliseconds (8 kHz clock).
//!
//! **MOS.** R = 93.2 − Id − Ie,eff (G.107 with its defaults for every other factor), where
//! - Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl + Bpl), with Ie = 0 and Bpl = 25.1 for G.711 with
//!   packet-loss concealment (G.113 appendix I) and Ppl the loss in per cent (random loss,
//!   BurstR = 1);
//! - Id from the one-way delay d = network delay + 2 · jitter (the jitter buffer) + 10 ms
//!   (G.711 packetisation): Id = 0.024 · d + 0.11 · (d − 177.3) · H(d − 177.3), H the step
//!   function (the usual simplification of G.107's Idd for delays under 400 ms);
//! - MOS = 1 + 0.035 · R + R · (R − 60) · (100 − R) · 7 · 10⁻⁶ for 0 < R < 100, 1 below,
//!   4.5 above.
//!
//! A lossless, jitter-free G.711 leg on a LAN scores 4.40, the G.711 ceiling.

/// RTP clock of G.711: samples per second.
const CLOCK_HZ: f64 = 8000.0;
/// A sequence number this far ahead of the highest is a restart, not a gap (RFC 3550 A.1).
const MAX_DROPOUT: u16 = 3000;
/// A sequence number this far behind is a late or duplicate packet.
const MAX_MISORDER: u16 = 100;

/// What one leg's received RTP looked like over the call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LegQuality {
    /// Packets the sender sent that never arrived, in per cent of those it sent.
    pub loss_percent: f64,
    /// RFC 3550 interarrival jitter, in milliseconds.
    pub jitter_ms: f64,
    /// Estimated mean opinion score, 1 to 4.5 (E-model, G.711).
    pub mos: f64,
    /// Packets received.
    pub received: u64,
}

/// What the box received on both legs of a call: the customer's RTP (from the trunk) and
/// the agent's (from the phone); `None` for a leg that sent nothing.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CallQuality {
    pub customer: Option<LegQuality>,
    pub agent: Option<LegQuality>,
}

/// Running receive statistics of one RTP stream.
#[derive(Debug, Clone, Default)]
pub struct ReceiveStats {
    started: bool,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u64,
    /// Jitter in timestamp units, as RFC 3550 keeps it.
    jitter: f64,
    /// The previous packet's transit time (arrival − timestamp), in timestamp units.
    last_transit: Option<f64>,
    ssrc: u32,
}

impl ReceiveStats {
    /// One packet: its sequence number, RTP timestamp and SSRC, and when it arrived
    /// (seconds on any monotonic clock). A new SSRC starts the counts again (the far end
    /// restarted its stream: a re-INVITE, a transfer).
    pub fn packet(&mut self, seq: u16, timestamp: u32, ssrc: u32, arrival_secs: f64) {
        if !self.started || ssrc != self.ssrc {
            *self = ReceiveStats { started: true, base_seq: u32::from(seq), max_seq: seq, ssrc, ..ReceiveStats::default() };
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta == 0 {
                // A duplicate: counted as received (RFC 3550 does), so loss may go negative.
            } else if delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles += 1 << 16;
                }
                self.max_seq = seq;
            } else if delta <= u16::MAX - MAX_MISORDER {
                // A jump too large to be loss: the sender restarted its numbering.
                *self = ReceiveStats { started: true, base_seq: u32::from(seq), max_seq: seq, ssrc, ..ReceiveStats::default() };
            }
            // Otherwise late or reordered: received, no change to the highest.
        }
        self.received += 1;
        let transit = arrival_secs * CLOCK_HZ - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            // Timestamps wrap at 2^32: the difference is taken modulo that.
            let mut d = transit - last;
            let wrap = f64::from(u32::MAX) + 1.0;
            if d > wrap / 2.0 {
                d -= wrap;
            } else if d < -wrap / 2.0 {
                d += wrap;
            }
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    /// Packets the sender numbered from the first to the highest seen.
    pub fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        u64::from(self.cycles + u32::from(self.max_seq)) + 1 - u64::from(self.base_seq)
    }

    /// Packets received (duplicates included).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets lost so far (never negative).
    pub fn lost(&self) -> u64 {
        self.expected().saturating_sub(self.received)
    }

    /// The RFC 3550 jitter in milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.jitter / CLOCK_HZ * 1000.0
    }

    /// The leg's figures, with `network_delay_ms` as the one-way delay; `None` when nothing
    /// was received.
    pub fn quality(&self, network_delay_ms: f64) -> Option<LegQuality> {
        let expected = self.expected();
        if expected == 0 {
            return None;
        }
        let loss_percent = self.lost() as f64 * 100.0 / expected as f64;
        let jitter_ms = self.jitter_ms();
        Some(LegQuality { loss_percent, jitter_ms, mos: g711_mos(loss_percent, jitter_ms, network_delay_ms), received: self.received })
    }
}

/// The E-model's MOS for a G.711 leg (see the module's documentation for the formula).
pub fn g711_mos(loss_percent: f64, jitter_ms: f64, network_delay_ms: f64) -> f64 {
    const IE: f64 = 0.0;
    const BPL: f64 = 25.1;
    let ppl = loss_percent.clamp(0.0, 100.0);
    let ie_eff = IE + (95.0 - IE) * ppl / (ppl + BPL);
    let d = network_delay_ms.max(0.0) + 2.0 * jitter_ms.max(0.0) + 10.0;
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let r = 93.2 - id - ie_eff;
    if r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packets 20 ms apart (160 timestamp units), arriving on time.
    fn steady(stats: &mut ReceiveStats, first_seq: u16, n: u16, skip: impl Fn(u16) -> bool) {
        for i in 0..n {
            if skip(i) {
                continue;
            }
            let seq = first_seq.wrapping_add(i);
            stats.packet(seq, 1000 + u32::from(i) * 160, 7, f64::from(i) * 0.02);
        }
    }

    #[test]
    fn one_packet_in_twenty_lost_is_five_per_cent() {
        let mut stats = ReceiveStats::default();
        steady(&mut stats, 100, 1000, |i| i % 20 == 10);
        assert_eq!((stats.expected(), stats.received(), stats.lost()), (1000, 950, 50));
        let quality = stats.quality(0.0).expect("packets came");
        assert!((quality.loss_percent - 5.0).abs() < 1e-9, "{quality:?}");
        assert!(quality.jitter_ms < 1e-6, "on-time packets have no jitter: {quality:?}");
    }

    #[test]
    fn sequence_numbers_wrap_without_counting_a_loss() {
        let mut stats = ReceiveStats::default();
        steady(&mut stats, 65_500, 200, |_| false);
        assert_eq!((stats.expected(), stats.lost()), (200, 0));
    }

    #[test]
    fn late_and_duplicate_packets_are_not_losses() {
        let mut stats = ReceiveStats::default();
        for (seq, at) in [(1u16, 0.0), (3, 0.04), (2, 0.045), (4, 0.06), (4, 0.061), (5, 0.08)] {
            stats.packet(seq, 160 * u32::from(seq), 9, at);
        }
        assert_eq!((stats.expected(), stats.received(), stats.lost()), (5, 6, 0));
    }

    #[test]
    fn a_new_ssrc_starts_the_counts_again() {
        let mut stats = ReceiveStats::default();
        steady(&mut stats, 10, 50, |i| i % 2 == 0);
        stats.packet(40_000, 5, 8, 10.0);
        stats.packet(40_001, 165, 8, 10.02);
        assert_eq!((stats.expected(), stats.lost()), (2, 0));
    }

    #[test]
    fn jitter_follows_arrival_spread() {
        let mut stats = ReceiveStats::default();
        // Every other packet 10 ms late: |D| is 80 timestamp units each time, so J tends to 80
        // units, 10 ms.
        for i in 0..2000u16 {
            let late = if i % 2 == 1 { 0.01 } else { 0.0 };
            stats.packet(i, u32::from(i) * 160, 1, f64::from(i) * 0.02 + late);
        }
        assert!((stats.jitter_ms() - 10.0).abs() < 0.1, "{}", stats.jitter_ms());
    }

    #[test]
    fn the_e_model_scores_g711_as_expected() {
        // The G.711 ceiling on a LAN.
        let clean = g711_mos(0.0, 0.0, 0.0);
        assert!((clean - 4.40).abs() < 0.01, "{clean}");
        // 5 % random loss with concealment: R ≈ 93.2 − 0.24 − 15.78 ≈ 77.2, MOS ≈ 3.9.
        let lossy = g711_mos(5.0, 0.0, 0.0);
        assert!((lossy - 3.9).abs() < 0.05, "{lossy}");
        // Long delay costs too (d = 300 ms: Id ≈ 20.7).
        assert!(g711_mos(0.0, 0.0, 290.0) < 3.9);
        assert!(g711_mos(100.0, 500.0, 1000.0) >= 1.0);
        // Monotone in each factor.
        assert!(g711_mos(1.0, 0.0, 20.0) > g711_mos(2.0, 0.0, 20.0));
        assert!(g711_mos(1.0, 5.0, 20.0) > g711_mos(1.0, 40.0, 20.0));
    }
}
