//! The INVITE transaction table. A transaction being routed belongs to its
//! routing task (events reach it through a channel); once answered, it only
//! absorbs retransmissions and ACKs and runs Timers G, H and I, so it moves
//! into the table itself: the receive path drives it in place and one timer
//! task serves every answered transaction from a deadline queue. No task,
//! channel or timer registration per call outlives the decision.
//!
//! No I/O here: methods return what to send; the endpoint sends it.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::endpoint::Peer;
use super::transaction::{Action, InviteEvent, InviteServer, InviteState, Timer, TransactionKey};

/// What the routing task of a transaction is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxnEvent {
    Retransmission,
    Ack,
    Cancel,
}

/// Responses to send, each to its peer.
pub(super) type Sends = Vec<(Peer, Vec<u8>)>;

enum Entry {
    /// Being routed: events go to the routing task.
    Routing(mpsc::Sender<TxnEvent>),
    /// Answered: driven here.
    Answered(Box<Answered>),
}

struct Answered {
    machine: InviteServer,
    peer: Peer,
    g: Option<Instant>,
    h: Option<Instant>,
    i: Option<Instant>,
    /// The deadline this transaction has in the queue (others are stale).
    queued: Option<Instant>,
}

impl Answered {
    fn next(&self) -> Option<Instant> {
        [self.g, self.h, self.i].into_iter().flatten().min()
    }

    /// The earliest timer due at `now`, disarmed, with its deadline.
    fn take_due(&mut self, now: Instant) -> Option<(InviteEvent, Instant)> {
        let (slot, event) = [
            (&mut self.g, InviteEvent::TimerG),
            (&mut self.h, InviteEvent::TimerH),
            (&mut self.i, InviteEvent::TimerI),
        ]
        .into_iter()
        .filter(|(at, _)| at.is_some_and(|at| at <= now))
        .min_by_key(|(at, _)| **at)?;
        slot.take().map(|at| (event, at))
    }

    /// Applies `event` (which happened at `at`); `true` once terminated.
    fn apply(&mut self, event: InviteEvent, at: Instant, sends: &mut Sends) -> bool {
        let mut terminated = false;
        for action in self.machine.on_event(event) {
            match action {
                Action::Send(bytes) => sends.push((self.peer.clone(), bytes)),
                Action::Arm(timer, after) => {
                    let slot = match timer {
                        Timer::G => &mut self.g,
                        Timer::H => &mut self.h,
                        Timer::I => &mut self.i,
                    };
                    *slot = Some(at + after);
                }
                Action::Terminate => terminated = true,
            }
        }
        if self.machine.state() == InviteState::Confirmed {
            (self.g, self.h) = (None, None);
        }
        terminated
    }
}

/// The table and the deadline queue of answered transactions.
#[derive(Default)]
pub(super) struct Table {
    entries: HashMap<TransactionKey, Entry>,
    due: BinaryHeap<Reverse<(Instant, TransactionKey)>>,
}

impl Table {
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(super) fn insert_routing(&mut self, key: TransactionKey, tx: mpsc::Sender<TxnEvent>) {
        self.entries.insert(key, Entry::Routing(tx));
    }

    /// Sends the final response of a routed transaction and keeps it
    /// answered. `None` when the transaction is already gone.
    pub(super) fn answer(
        &mut self,
        key: &TransactionKey,
        machine: InviteServer,
        peer: Peer,
        response: Vec<u8>,
        now: Instant,
    ) -> Outcome {
        let mut answered = Box::new(Answered {
            machine,
            peer,
            g: None,
            h: None,
            i: None,
            queued: None,
        });
        let mut sends = Vec::new();
        let terminated = answered.apply(InviteEvent::Final(response), now, &mut sends);
        self.entries.insert(key.clone(), Entry::Answered(answered));
        self.settle(key, terminated, sends)
    }

    /// Delivers a received event to transaction `key`: to its routing task,
    /// or, once answered, to the transaction itself. `None` if there is none.
    pub(super) fn deliver(
        &mut self,
        key: &TransactionKey,
        event: TxnEvent,
        now: Instant,
    ) -> Option<Outcome> {
        let answered = match self.entries.get_mut(key)? {
            Entry::Routing(tx) => {
                let _ = tx.try_send(event);
                return Some(Outcome::default());
            }
            Entry::Answered(answered) => answered,
        };
        let event = match event {
            TxnEvent::Retransmission => InviteEvent::Retransmission,
            TxnEvent::Ack => InviteEvent::Ack,
            // Too late to cancel: the final response is out.
            TxnEvent::Cancel => return Some(Outcome::default()),
        };
        let mut sends = Vec::new();
        let terminated = answered.apply(event, now, &mut sends);
        Some(self.settle(key, terminated, sends))
    }

    /// The earliest queued deadline.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((at, _))| *at)
    }

    /// Fires every timer due at `now`; returns what to send and how many
    /// final responses were retransmitted (Timer G).
    pub(super) fn fire_due(&mut self, now: Instant) -> (Sends, u64, usize) {
        let (mut sends, mut retransmitted, mut ended) = (Vec::new(), 0, 0);
        while let Some(Reverse((at, _))) = self.due.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((at, key))) = self.due.pop() else {
                break;
            };
            let Some(Entry::Answered(a)) = self.entries.get_mut(&key) else {
                continue;
            };
            if a.queued != Some(at) {
                continue; // stale: re-queued for another deadline
            }
            a.queued = None;
            let mut terminated = false;
            while let Some((event, deadline)) = a.take_due(now) {
                retransmitted += u64::from(event == InviteEvent::TimerG);
                terminated |= a.apply(event, deadline, &mut sends);
            }
            let outcome = self.settle(&key, terminated, Vec::new());
            ended += usize::from(outcome.ended);
        }
        (sends, retransmitted, ended)
    }

    /// Removes a terminated transaction, or queues its next deadline.
    fn settle(&mut self, key: &TransactionKey, terminated: bool, sends: Sends) -> Outcome {
        let mut outcome = Outcome {
            sends,
            ..Outcome::default()
        };
        if terminated {
            self.entries.remove(key);
            outcome.ended = true;
            return outcome;
        }
        let Some(Entry::Answered(a)) = self.entries.get_mut(key) else {
            return outcome;
        };
        let Some(next) = a.next() else { return outcome };
        if a.queued.is_some_and(|queued| queued <= next) {
            return outcome; // an earlier entry will re-queue it
        }
        a.queued = Some(next);
        outcome.earlier = self.next_due().is_none_or(|head| next < head);
        self.due.push(Reverse((next, key.clone())));
        outcome
    }
}

/// What driving a transaction produced.
#[derive(Default)]
pub(super) struct Outcome {
    pub sends: Sends,
    /// The transaction terminated and left the table.
    pub ended: bool,
    /// A deadline earlier than any queued one: wake the timer task.
    pub earlier: bool,
}
