//! Server transactions (RFC 3261 §17.2) as pure state machines: events in,
//! actions out. No sockets, no clocks: the caller owns both and feeds timer
//! expiries back as events, so tests drive them with any notion of time.

use std::time::Duration;

use super::header::Via;
use super::parse::Request;

/// The RFC 3261 magic cookie of RFC 3261-compliant branches.
const MAGIC_COOKIE: &str = "z9hG4bK";

/// Identifies a server transaction (§17.2.3). ACK maps to its INVITE.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransactionKey(String);

impl TransactionKey {
    /// The key of `req`, treating ACK (and, with `as_invite`, CANCEL) as the INVITE it refers to.
    pub fn of(
        req: &Request<'_>,
        via: &Via,
        call_id: &str,
        cseq: u32,
        from_tag: Option<&str>,
        as_invite: bool,
    ) -> Self {
        let method = if as_invite || req.method == "ACK" {
            "INVITE"
        } else {
            req.method
        };
        let sent_by = format!(
            "{}:{}",
            via.host.to_ascii_lowercase(),
            via.port.unwrap_or(0)
        );
        match via.branch.as_deref() {
            Some(b) if b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE) => {
                Self(format!("3261|{b}|{sent_by}|{method}"))
            }
            // RFC 2543 matching (§17.2.3): Request-URI, From tag, Call-ID, CSeq number, top Via.
            // A CANCEL's or ACK's Request-URI equals its INVITE's.
            branch => Self(format!(
                "2543|{}|{}|{call_id}|{cseq}|{sent_by}|{}|{method}",
                req.uri,
                from_tag.unwrap_or_default(),
                branch.unwrap_or_default()
            )),
        }
    }

    /// A To tag derived from the key, so a retransmitted request gets the
    /// same tag even when answered without state.
    pub fn to_tag(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.0.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("ir{h:016x}")
    }
}

/// RFC 3261 timer values (§17.1.1.1).
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// States of the INVITE server transaction (§17.2.1, Figure 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InviteState {
    Proceeding,
    Completed,
    Confirmed,
    Terminated,
}

/// What happened to the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteEvent {
    /// The INVITE was received again.
    Retransmission,
    /// The core decided: a 3xx–6xx final response.
    Final(Vec<u8>),
    Ack,
    TimerG,
    TimerH,
    TimerI,
}

/// What the owner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Vec<u8>),
    /// (Re)arm a timer; an armed timer of the same kind is replaced.
    Arm(Timer, Duration),
    Terminate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    G,
    H,
    I,
}

/// The INVITE server transaction of a redirect server: it only ever sends
/// `100 Trying` and one 3xx–6xx final response.
#[derive(Debug)]
pub struct InviteServer {
    state: InviteState,
    reliable: bool,
    timers: Timers,
    trying: Vec<u8>,
    last: Option<Vec<u8>>,
    g: Duration,
}

impl InviteServer {
    /// A transaction that has just sent `trying` (the 100).
    pub fn new(trying: Vec<u8>, reliable: bool, timers: Timers) -> Self {
        Self {
            state: InviteState::Proceeding,
            reliable,
            timers,
            trying,
            last: None,
            g: timers.t1,
        }
    }

    pub fn state(&self) -> InviteState {
        self.state
    }

    /// Applies one event.
    pub fn on_event(&mut self, event: InviteEvent) -> Vec<Action> {
        use InviteState::*;
        match (self.state, event) {
            (Proceeding, InviteEvent::Retransmission) => vec![Action::Send(self.trying.clone())],
            (Proceeding, InviteEvent::Final(response)) => {
                self.state = Completed;
                let mut actions = vec![Action::Send(response.clone())];
                self.last = Some(response);
                if !self.reliable {
                    actions.push(Action::Arm(Timer::G, self.g));
                }
                actions.push(Action::Arm(Timer::H, self.timers.t1 * 64));
                actions
            }
            (Completed, InviteEvent::Retransmission) => {
                self.last.clone().map(Action::Send).into_iter().collect()
            }
            (Completed, InviteEvent::TimerG) => {
                self.g = (self.g * 2).min(self.timers.t2);
                let resend = self.last.clone().map(Action::Send);
                resend
                    .into_iter()
                    .chain([Action::Arm(Timer::G, self.g)])
                    .collect()
            }
            (Completed, InviteEvent::Ack) => {
                self.state = Confirmed;
                let wait = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                vec![Action::Arm(Timer::I, wait)]
            }
            (Completed, InviteEvent::TimerH) | (Confirmed, InviteEvent::TimerI) => {
                self.state = Terminated;
                vec![Action::Terminate]
            }
            // Absorbed: ACKs and INVITEs once confirmed, stray timers, late finals.
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(reliable: bool) -> InviteServer {
        let mut t = InviteServer::new(b"100".to_vec(), reliable, Timers::default());
        let actions = t.on_event(InviteEvent::Final(b"302".to_vec()));
        assert_eq!(actions[0], Action::Send(b"302".to_vec()));
        t
    }

    #[test]
    fn proceeding_resends_100_and_final_arms_g_and_h() {
        let mut t = InviteServer::new(b"100".to_vec(), false, Timers::default());
        assert_eq!(
            t.on_event(InviteEvent::Retransmission),
            vec![Action::Send(b"100".to_vec())]
        );
        assert_eq!(
            t.on_event(InviteEvent::Ack),
            vec![],
            "ACK before a final is absorbed"
        );
        let actions = t.on_event(InviteEvent::Final(b"302".to_vec()));
        assert_eq!(
            actions,
            vec![
                Action::Send(b"302".to_vec()),
                Action::Arm(Timer::G, Duration::from_millis(500)),
                Action::Arm(Timer::H, Duration::from_secs(32)),
            ]
        );
        assert_eq!(
            t.on_event(InviteEvent::Final(b"603".to_vec())),
            vec![],
            "one final only"
        );
    }

    #[test]
    fn timer_g_doubles_up_to_t2_until_ack() {
        let mut t = completed(false);
        let mut intervals = Vec::new();
        for _ in 0..6 {
            let actions = t.on_event(InviteEvent::TimerG);
            assert_eq!(actions[0], Action::Send(b"302".to_vec()));
            let Action::Arm(Timer::G, d) = actions[1] else {
                panic!()
            };
            intervals.push(d.as_millis());
        }
        assert_eq!(intervals, [1000, 2000, 4000, 4000, 4000, 4000]);
        assert_eq!(
            t.on_event(InviteEvent::Retransmission),
            vec![Action::Send(b"302".to_vec())]
        );
        assert_eq!(
            t.on_event(InviteEvent::Ack),
            vec![Action::Arm(Timer::I, Duration::from_secs(5))]
        );
        assert_eq!(t.state(), InviteState::Confirmed);
        assert_eq!(
            t.on_event(InviteEvent::TimerG),
            vec![],
            "no retransmission once confirmed"
        );
        assert_eq!(t.on_event(InviteEvent::Retransmission), vec![], "absorbed");
        assert_eq!(t.on_event(InviteEvent::TimerI), vec![Action::Terminate]);
    }

    #[test]
    fn timer_h_ends_an_unacknowledged_transaction_and_tcp_skips_g() {
        let mut t = completed(false);
        assert_eq!(t.on_event(InviteEvent::TimerH), vec![Action::Terminate]);
        assert_eq!(t.state(), InviteState::Terminated);
        let mut t = InviteServer::new(b"100".to_vec(), true, Timers::default());
        let actions = t.on_event(InviteEvent::Final(b"302".to_vec()));
        assert!(!actions
            .iter()
            .any(|a| matches!(a, Action::Arm(Timer::G, _))));
        assert_eq!(
            t.on_event(InviteEvent::Ack),
            vec![Action::Arm(Timer::I, Duration::ZERO)]
        );
    }
}
