//! Push mode's ticker: the messages the server sends each connection on its
//! own, `{"seq":N,"ts":T,"pad":"xxx…"}`, padded to an exact size.

use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Interval, MissedTickBehavior};

/// Shortest period between pushes (rates above a million per second).
const MIN_PERIOD: Duration = Duration::from_micros(1);
/// Longest period: a year (rates below one a year).
const MAX_PERIOD: Duration = Duration::from_secs(365 * 24 * 3600);

/// The time between two pushes at `rate` per second; `None` (no pushes)
/// when the rate is not a positive finite number.
pub(super) fn period(rate: f64) -> Option<Duration> {
    if !(rate.is_finite() && rate > 0.0) {
        return None;
    }
    let p = Duration::try_from_secs_f64(1.0 / rate).unwrap_or(MAX_PERIOD);
    Some(p.clamp(MIN_PERIOD, MAX_PERIOD))
}

/// One connection's pushes: the timer, the next sequence number and the
/// message being built.
pub(super) struct Ticker {
    interval: Option<Interval>,
    seq: u64,
    size: usize,
    buf: Vec<u8>,
}

impl Ticker {
    /// Pushes every `period` (never when `None`), `size` bytes each; the
    /// first is due at once.
    pub(super) fn new(period: Option<Duration>, size: usize) -> Self {
        let interval = period.map(|p| {
            let mut i = tokio::time::interval(p);
            // Delay rather than Skip (or the default Burst): after a stall
            // (a slow reader blocking our writes, or a saturated server) the
            // next push comes one full period later, so two pushes are never
            // closer together than 1/rate and no connection ever receives
            // more than the rate it asked for. Skip would keep the original
            // grid, which can put a push right after a late one; Burst would
            // send every missed push at once.
            i.set_missed_tick_behavior(MissedTickBehavior::Delay);
            i
        });
        Ticker {
            interval,
            seq: 0,
            size,
            buf: Vec::new(),
        }
    }

    /// Waits for the next push to be due (forever when pushes are off).
    /// Cancel safe: a tick not taken stays due.
    pub(super) async fn tick(&mut self) {
        match &mut self.interval {
            Some(i) => {
                i.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// The next message, stamped now.
    pub(super) fn next_message(&mut self) -> &[u8] {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        message(&mut self.buf, self.seq, ts, self.size);
        self.seq += 1;
        &self.buf
    }
}

/// Writes `{"seq":SEQ,"ts":TS,"pad":"xxx"}` into `buf`, padded with `x` to
/// exactly `size` bytes. When even an empty pad would exceed `size`, the
/// message is `{"seq":SEQ,"ts":TS}` without the pad field (and so longer
/// than `size` when that is shorter still).
pub(super) fn message(buf: &mut Vec<u8>, seq: u64, ts: u128, size: usize) {
    const PAD_OPEN: &[u8] = br#","pad":""#;
    const PAD_CLOSE: &[u8] = br#""}"#;
    buf.clear();
    // Writing into a Vec cannot fail.
    let _ = write!(buf, r#"{{"seq":{seq},"ts":{ts}"#);
    let bare = buf.len() + PAD_OPEN.len() + PAD_CLOSE.len();
    if size >= bare {
        buf.extend_from_slice(PAD_OPEN);
        buf.resize(buf.len() + (size - bare), b'x');
        buf.extend_from_slice(PAD_CLOSE);
    } else {
        buf.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_padded_to_the_exact_size() {
        let mut buf = Vec::new();
        for (seq, size) in [(0, 128), (9, 200), (10, 200), (123_456, 4096), (7, 40)] {
            message(&mut buf, seq, 1_700_000_000_000_000, size);
            assert_eq!(buf.len(), size, "seq {seq}");
            let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
            assert_eq!(v["seq"], seq);
            assert_eq!(v["ts"], 1_700_000_000_000_000u64);
            let pad = v["pad"].as_str().unwrap();
            assert!(pad.bytes().all(|c| c == b'x'));
        }
        // 40 bytes is exactly the message with an empty pad.
        message(&mut buf, 7, 1_700_000_000_000_000, 40);
        assert!(
            buf.ends_with(br#""pad":""}"#),
            "{}",
            String::from_utf8_lossy(&buf)
        );
    }

    #[test]
    fn too_small_a_size_drops_the_pad() {
        let mut buf = Vec::new();
        message(&mut buf, 7, 1_700_000_000_000_000, 39);
        assert_eq!(buf, br#"{"seq":7,"ts":1700000000000000}"#);
    }

    #[test]
    fn periods() {
        assert_eq!(period(50.0), Some(Duration::from_millis(20)));
        assert_eq!(period(0.0), None);
        assert_eq!(period(-1.0), None);
        assert_eq!(period(f64::NAN), None);
        assert_eq!(period(f64::INFINITY), None);
        assert_eq!(period(1e300), Some(MIN_PERIOD));
        assert_eq!(period(1e-300), Some(MAX_PERIOD));
    }
}
