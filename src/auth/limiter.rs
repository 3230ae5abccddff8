//! Brute-force brake: after 5 failures from one address, or against one user name, within
//! a minute, each further failure is answered only after 2 s. Per user name as well, so a
//! guesser spread over many addresses is slowed down on the account it attacks.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub(crate) const WINDOW: Duration = Duration::from_secs(60);
pub(crate) const THRESHOLD: usize = 5;
pub(crate) const PAUSE: Duration = Duration::from_secs(2);
/// Addresses and user names tracked at once; past this, the one that failed longest ago is
/// forgotten.
pub(crate) const MAX_ADDRESSES: usize = 10_000;
/// Bytes of a user name kept as its key: a guesser's long names cost no more than this.
const MAX_USER_KEY: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Addr(IpAddr),
    User(String),
}

pub(crate) struct Limiter {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Recent failure times per address, oldest first, at most [`THRESHOLD`] kept.
    failures: HashMap<Key, VecDeque<Instant>>,
    last_sweep: Option<Instant>,
}

/// IPv4-mapped IPv6 is IPv4; other IPv6 addresses count per /64, the block one subscriber
/// usually holds whole (else a guesser would rotate through its 2^64 addresses).
fn key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Limiter {
    pub(crate) fn new() -> Limiter {
        Limiter {
            state: Mutex::new(State::default()),
        }
    }

    pub(crate) fn note_failure(&self, ip: IpAddr) -> Duration {
        self.note_failure_at(ip, Instant::now())
    }

    pub(crate) fn note_failure_at(&self, ip: IpAddr, now: Instant) -> Duration {
        self.note(Key::Addr(key(ip)), now)
    }

    pub(crate) fn note_user_failure(&self, user: &str) -> Duration {
        self.note_user_failure_at(user, Instant::now())
    }

    pub(crate) fn note_user_failure_at(&self, user: &str, now: Instant) -> Duration {
        let mut end = user.len().min(MAX_USER_KEY);
        while !user.is_char_boundary(end) {
            end -= 1;
        }
        self.note(Key::User(user[..end].to_string()), now)
    }

    fn note(&self, key: Key, now: Instant) -> Duration {
        // A poisoned lock only means another thread panicked mid-update; the map is still
        // usable, and refusing to count would switch the brake off.
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        state.sweep(now);
        if !state.failures.contains_key(&key) && state.failures.len() >= MAX_ADDRESSES {
            state.evict_oldest();
        }
        let times = state.failures.entry(key).or_default();
        times.retain(|t| now.saturating_duration_since(*t) < WINDOW);
        times.push_back(now);
        while times.len() > THRESHOLD {
            times.pop_front();
        }
        if times.len() >= THRESHOLD {
            PAUSE
        } else {
            Duration::ZERO
        }
    }

    #[cfg(test)]
    pub(crate) fn tracked(&self) -> usize {
        self.state.lock().map_or(0, |s| s.failures.len())
    }
}

impl State {
    /// Forgets addresses whose last failure is a minute old: at most every few seconds, or
    /// whenever the table is full.
    fn sweep(&mut self, now: Instant) {
        let due = self
            .last_sweep
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(5));
        if !due && self.failures.len() < MAX_ADDRESSES {
            return;
        }
        self.last_sweep = Some(now);
        self.failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
        });
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .failures
            .iter()
            .min_by_key(|(_, times)| times.back().copied())
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            self.failures.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn five_failures_against_one_user_slow_that_user_from_any_address() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for i in 0..4 {
            assert_eq!(l.note_user_failure_at("cam", t0), Duration::ZERO, "{i}");
        }
        assert_eq!(l.note_user_failure_at("cam", t0), PAUSE);
        assert_eq!(l.note_user_failure_at("other", t0), Duration::ZERO);
        let long = "é".repeat(100);
        assert_eq!(l.note_user_failure_at(&long, t0), Duration::ZERO);
        assert_eq!(l.note_user_failure_at(&"é".repeat(40), t0), Duration::ZERO);
        assert_eq!(
            l.tracked(),
            3,
            "long names share their first 64 bytes as key"
        );
        assert_eq!(
            l.note_user_failure_at("cam", t0 + WINDOW),
            Duration::ZERO,
            "forgotten"
        );
    }

    #[test]
    fn five_failures_in_a_minute_slow_that_address_only() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let a = ip("203.0.113.7");
        for i in 0..4 {
            let at = t0 + Duration::from_secs(i * 10);
            assert_eq!(
                l.note_failure_at(a, at),
                Duration::ZERO,
                "failure {}",
                i + 1
            );
        }
        assert_eq!(l.note_failure_at(a, t0 + Duration::from_secs(40)), PAUSE);
        assert_eq!(l.note_failure_at(a, t0 + Duration::from_secs(41)), PAUSE);
        // Another address, and the same address written as IPv4-mapped IPv6.
        let at = t0 + Duration::from_secs(42);
        assert_eq!(l.note_failure_at(ip("203.0.113.8"), at), Duration::ZERO);
        assert_eq!(l.note_failure_at(ip("::ffff:203.0.113.7"), at), PAUSE);
        // Once the failures are more than a minute apart, the brake is off again.
        let later = t0 + Duration::from_secs(200);
        assert_eq!(l.note_failure_at(a, later), Duration::ZERO);
    }

    #[test]
    fn failures_spread_over_more_than_a_minute_do_not_trigger() {
        let l = Limiter::new();
        let t0 = Instant::now();
        let a = ip("198.51.100.1");
        for i in 0..20 {
            let at = t0 + Duration::from_secs(i * 16);
            assert_eq!(l.note_failure_at(a, at), Duration::ZERO, "failure {i}");
        }
    }

    #[test]
    fn ipv6_counts_per_64() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for i in 0..4 {
            let a = ip(&format!("2001:db8:1:2::{i}"));
            assert_eq!(l.note_failure_at(a, t0), Duration::ZERO);
        }
        assert_eq!(l.note_failure_at(ip("2001:db8:1:2:ffff::9"), t0), PAUSE);
        assert_eq!(l.note_failure_at(ip("2001:db8:1:3::1"), t0), Duration::ZERO);
    }

    #[test]
    fn the_table_stays_bounded() {
        let l = Limiter::new();
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            l.note_failure_at(a, t0 + Duration::from_millis(u64::from(i) / 1000));
        }
        assert!(l.tracked() <= MAX_ADDRESSES, "{}", l.tracked());
        // A minute later, everything old is swept on the next failure.
        l.note_failure_at(ip("192.0.2.1"), t0 + Duration::from_secs(120));
        assert_eq!(l.tracked(), 1);
    }
}
