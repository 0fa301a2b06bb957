//! The input of each delivery and consumer: a channel bounded in messages and in the bytes of
//! the records waiting in it, so a reader that falls behind (a hanging store, a consumer
//! blocked on a record that keeps failing) slows the producers down instead of growing memory.
//!
//! Each message sent holds [`INPUT_BUDGET`] permits for its records' bytes until the reader is
//! done with them: a delivery as soon as it has handled the message (the records then sit in
//! its transform batch and S3 buffers, which have their own bounds), a consumer once the
//! records have left its shard queues (consumed, discarded or reported blocked). Sending waits
//! for permits; at shutdown the budget closes, so nothing waits for it any longer.

use super::stream::{Feed, SourceRecord};
use std::sync::Arc;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc};

/// Bytes of records a reader's input holds before sending waits: 64 MiB per delivery or
/// consumer (documented in docs/engine.md, "Memory").
pub(crate) const INPUT_BUDGET: usize = 64 << 20;

/// Messages (put calls) a reader's input holds.
const CAPACITY: usize = 1024;

/// What a record costs the budget: its bytes and its bookkeeping.
pub(crate) fn cost(r: &SourceRecord) -> usize {
    r.data.len() + std::mem::size_of::<SourceRecord>()
}

fn feed_cost(feed: &Feed) -> usize {
    match feed {
        Feed::Records(records) => records.iter().map(cost).sum(),
        Feed::Rejected(rejected) => rejected.iter().map(|r| r.data.len() + r.reason.len()).sum(),
        Feed::Flush(_) => 0,
    }
}

/// Permits held for records in flight; released when dropped.
#[derive(Debug, Default)]
pub(crate) struct Held(Option<OwnedSemaphorePermit>);

impl Held {
    /// Takes `bytes` of what is held (all of it, when less is held).
    pub(crate) fn split_off(&mut self, bytes: usize) -> Held {
        match &mut self.0 {
            Some(p) if p.num_permits() > bytes => Held(p.split(bytes)),
            _ => Held(self.0.take()),
        }
    }

    /// Adds `other` to what is held.
    pub(crate) fn merge(&mut self, other: Held) {
        match (&mut self.0, other.0) {
            (Some(p), Some(o)) => p.merge(o),
            (None, o) => self.0 = o,
            (_, None) => {}
        }
    }
}

/// A message and the permits it holds.
pub(crate) type Sent = (Feed, Held);

/// The receiving half of a reader's input.
pub(crate) type InboxRx = mpsc::Receiver<Sent>;

/// The sending half of a reader's input.
#[derive(Clone, Debug)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<Sent>,
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
    (Inbox { tx, budget }, rx)
}

impl Inbox {
    /// Sends `feed` once its records fit in the budget (a message larger than the whole
    /// budget waits for all of it). `Err` when the reader is gone.
    pub(crate) async fn send(&self, feed: Feed) -> Result<(), Feed> {
        let bytes = feed_cost(&feed);
        let held = if bytes == 0 {
            Held::default()
        } else {
            let n = bytes.min(INPUT_BUDGET).min(u32::MAX as usize) as u32;
            // Without waiting when the budget has room (the usual case, and cheaper than
            // polling a future); closed at shutdown: from then on nothing waits for it.
            match Arc::clone(&self.budget).try_acquire_many_owned(n) {
                Ok(permit) => Held(Some(permit)),
                Err(TryAcquireError::Closed) => Held(None),
                Err(TryAcquireError::NoPermits) => {
                    Held(Arc::clone(&self.budget).acquire_many_owned(n).await.ok())
                }
            }
        };
        match self.tx.try_send((feed, held)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(sent)) => self.tx.send(sent).await.map_err(|e| e.0.0),
            Err(TrySendError::Closed(sent)) => Err(sent.0),
        }
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
}
