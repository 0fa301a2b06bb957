//! The input of each delivery and consumer: a channel bounded in messages and in the bytes of
//! the records waiting in it, so a reader that falls behind (a hanging store, a consumer
//! blocked on a record that keeps failing) slows the producers down instead of growing memory.
//!
//! Each message sent holds [`INPUT_BUDGET`] permits for its records' bytes until the reader is
//! done with them: a delivery as soon as it has handled the message (the records then sit in
//! its transform batch and S3 buffers, which have their own bounds), a consumer once the
//! records have left its shard queues (consumed, discarded or reported blocked). Sending waits
//! for permits; at shutdown the budget closes, so nothing waits for it any longer.
//!
//! A put reserves its room first ([`Inbox::reserve`]: permits, then a slot in the channel),
//! then locks its shard and sends through the [`Slot`] without waiting, so a shard's lock is
//! never held across a wait. The permits travel with the message as a count, and the reader
//! gives a whole wake-up's worth back at once ([`InboxRx::recv_many`]).

use super::stream::{Feed, SourceRecord};
use std::sync::Arc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Semaphore, TryAcquireError, mpsc};

/// Bytes of records a reader's input holds before sending waits: 64 MiB per delivery or
/// consumer (documented in docs/engine.md, "Memory").
pub(crate) const INPUT_BUDGET: usize = 64 << 20;

/// Messages (put calls) a reader's input holds.
const CAPACITY: usize = 65_536;

/// What a record costs the budget: its bytes and its bookkeeping.
pub(crate) fn cost(r: &SourceRecord) -> usize {
    cost_of(r.data.len())
}

/// What a record of `len` bytes costs the budget.
pub(crate) fn cost_of(len: usize) -> usize {
    len + std::mem::size_of::<SourceRecord>()
}

fn feed_cost(feed: &Feed) -> usize {
    match feed {
        Feed::Records(records) => records.iter().map(cost).sum(),
        Feed::Rejected(rejected) => rejected.iter().map(|r| r.data.len() + r.reason.len()).sum(),
        Feed::Flush(_) => 0,
    }
}

/// Permits held for records in flight; given back to the budget when dropped.
#[derive(Debug, Default)]
pub(crate) struct Held {
    permits: usize,
    /// The budget they go back to (`None` while nothing is held).
    budget: Option<Arc<Semaphore>>,
}

impl Held {
    /// Takes `bytes` of what is held (all of it, when less is held).
    pub(crate) fn split_off(&mut self, bytes: usize) -> Held {
        let permits = bytes.min(self.permits);
        self.permits -= permits;
        Held {
            permits,
            budget: if self.permits == 0 {
                self.budget.take()
            } else {
                self.budget.clone()
            },
        }
    }

    /// Adds `other` to what is held (permits of one budget: each reader has its own).
    pub(crate) fn merge(&mut self, mut other: Held) {
        self.permits += std::mem::take(&mut other.permits);
        if self.budget.is_none() {
            self.budget = other.budget.take();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget
            && self.permits > 0
        {
            budget.add_permits(self.permits);
        }
    }
}

/// A message and the permits it holds.
pub(crate) type Sent = (Feed, Held);

/// A message as the channel carries it: the permits are a count, turned back into a [`Held`]
/// by the reader (no reference to the budget per message: the producer and the reader would
/// take turns writing its counter).
type Message = (Feed, u32);

/// The receiving half of a reader's input.
#[derive(Debug)]
pub(crate) struct InboxRx {
    rx: mpsc::Receiver<Message>,
    budget: Arc<Semaphore>,
    /// Messages taken by [`InboxRx::recv_many`], kept for its next call.
    scratch: Vec<Message>,
}

impl InboxRx {
    fn held(&self, permits: usize) -> Held {
        Held {
            permits,
            budget: (permits > 0).then(|| Arc::clone(&self.budget)),
        }
    }

    /// The next message, `None` once every sender is gone and the input is empty.
    pub(crate) async fn recv(&mut self) -> Option<Sent> {
        let (feed, permits) = self.rx.recv().await?;
        Some((feed, self.held(permits as usize)))
    }

    /// Takes up to `limit` messages into `feeds` (waiting for one if there is none), and what
    /// they hold as one [`Held`]; `0` once every sender is gone and the input is empty.
    pub(crate) async fn recv_many(&mut self, feeds: &mut Vec<Feed>, limit: usize) -> (usize, Held) {
        let n = self.rx.recv_many(&mut self.scratch, limit).await;
        let mut permits = 0;
        feeds.extend(self.scratch.drain(..).map(|(feed, p)| {
            permits += p as usize;
            feed
        }));
        (n, self.held(permits))
    }

    /// A message without waiting, if there is one.
    pub(crate) fn try_recv(&mut self) -> Option<Sent> {
        let (feed, permits) = self.rx.try_recv().ok()?;
        Some((feed, self.held(permits as usize)))
    }

    /// Refuses further messages; those already sent can still be received.
    pub(crate) fn close(&mut self) {
        self.rx.close();
    }
}

/// Room reserved for one message in a reader's input ([`Inbox::reserve`]); given back if
/// dropped unsent.
#[derive(Debug)]
pub(crate) struct Slot<'a> {
    permit: Option<mpsc::Permit<'a, Message>>,
    permits: u32,
    budget: &'a Semaphore,
}

impl Slot<'_> {
    /// Sends `feed` without waiting. Records it holds fewer of than were reserved for (a
    /// shard refused some) give their room back.
    pub(crate) fn send(mut self, feed: Feed) {
        let used = feed_cost(&feed).min(self.permits as usize) as u32;
        self.permits -= used;
        if let Some(permit) = self.permit.take() {
            permit.send((feed, used));
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if self.permits > 0 {
            self.budget.add_permits(self.permits as usize);
        }
    }
}

/// The sending half of a reader's input.
#[derive(Clone, Debug)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<Message>,
    budget: Arc<Semaphore>,
}

/// A reader's input with the default bounds.
pub(crate) fn inbox() -> (Inbox, InboxRx) {
    with_budget(CAPACITY, INPUT_BUDGET)
}

/// A reader's input holding at most `messages` messages and `bytes` bytes of records.
pub(crate) fn with_budget(messages: usize, bytes: usize) -> (Inbox, InboxRx) {
    let (tx, rx) = mpsc::channel(messages);
    let budget = Arc::new(Semaphore::new(bytes));
    (
        Inbox {
            tx,
            budget: Arc::clone(&budget),
        },
        InboxRx {
            rx,
            budget,
            scratch: Vec::new(),
        },
    )
}

impl Inbox {
    /// Sends `feed` once its records fit in the budget (a message larger than the whole
    /// budget waits for all of it). `Err` when the reader is gone.
    pub(crate) async fn send(&self, feed: Feed) -> Result<(), Feed> {
        match self.reserve(feed_cost(&feed)).await {
            Some(slot) => {
                slot.send(feed);
                Ok(())
            }
            None => Err(feed),
        }
    }

    /// Room for one message of records costing `bytes` ([`cost`]): waits until the budget
    /// and the channel have it, so that [`Slot::send`] never waits (senders reserve first,
    /// then lock the shards they put to and send under the lock). `None` when the reader is
    /// gone.
    pub(crate) async fn reserve(&self, bytes: usize) -> Option<Slot<'_>> {
        let permits = if bytes == 0 {
            0
        } else {
            let n = bytes.min(INPUT_BUDGET).min(u32::MAX as usize) as u32;
            // Without waiting when the budget has room (the usual case, and cheaper than
            // polling a future); closed at shutdown: from then on nothing waits for it. The
            // permits travel as a count; the reader gives them back.
            match self.budget.try_acquire_many(n) {
                Ok(permit) => {
                    permit.forget();
                    n
                }
                Err(TryAcquireError::Closed) => 0,
                Err(TryAcquireError::NoPermits) => match self.budget.acquire_many(n).await {
                    Ok(permit) => {
                        permit.forget();
                        n
                    }
                    Err(_closed) => 0,
                },
            }
        };
        let permit = match self.tx.try_reserve() {
            Ok(permit) => Some(permit),
            Err(TrySendError::Full(())) => self.tx.reserve().await.ok(),
            Err(TrySendError::Closed(())) => None,
        };
        let slot = Slot {
            permit,
            permits,
            budget: &self.budget,
        };
        slot.permit.is_some().then_some(slot)
    }

    /// Stops making senders wait for the budget (shutdown).
    pub(crate) fn close(&self) {
        self.budget.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn records(n: usize, size: usize) -> Feed {
        Feed::Records(
            (0..n)
                .map(|i| SourceRecord::new(Bytes::from(vec![0u8; size]), 0, 0, i as u64))
                .collect(),
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_budget_makes_senders_wait_until_the_reader_is_done() {
        let one = cost(&SourceRecord::new(Bytes::from(vec![0u8; 1000]), 0, 0, 0));
        let (tx, mut rx) = with_budget(16, 3 * one);
        tx.send(records(2, 1000)).await.unwrap();
        tx.send(records(1, 1000)).await.unwrap();
        let blocked = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(records(1, 1000)).await }
        });
        tokio::task::yield_now().await;
        assert!(!blocked.is_finished(), "the budget is full");
        let (_, mut held) = rx.recv().await.unwrap();
        // Half of the first message is done: one record's room.
        drop(held.split_off(one));
        blocked.await.unwrap().unwrap();
        drop(held);
        // Closed, nothing waits: a message over the whole budget goes through at once.
        tx.close();
        tx.send(records(10, 1000)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn room_reserved_and_not_used_goes_back_to_the_budget() {
        let one = cost(&SourceRecord::new(Bytes::from(vec![0u8; 1000]), 0, 0, 0));
        let (tx, mut rx) = with_budget(1, 2 * one);
        // Dropped unsent (a shard refused the record): the room and the channel's slot are back.
        drop(tx.reserve(2 * one).await.unwrap());
        // Room for two records, one sent (the other refused): one record's room is back.
        tx.reserve(2 * one).await.unwrap().send(records(1, 1000));
        let (_, held) = rx.recv().await.unwrap();
        let second = tokio::spawn({
            let tx = tx.clone();
            async move { tx.reserve(one).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(second.is_finished(), "one record's room was given back");
        second.await.unwrap().unwrap();
        // The message's own room goes back when the reader is done with it.
        let both = tokio::spawn({
            let tx = tx.clone();
            async move { tx.reserve(2 * one).await.map(|_| ()) }
        });
        tokio::task::yield_now().await;
        assert!(!both.is_finished(), "the reader still holds one record");
        drop(held);
        both.await.unwrap().unwrap();
        // Once the reader is gone there is no room, and nothing is held.
        drop(rx);
        assert!(tx.reserve(one).await.is_none());
    }
}
