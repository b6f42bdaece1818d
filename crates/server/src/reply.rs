//! A connection's reply channel: the replies of the worker answering its request, in order,
//! to the connection's task (handler.rs).
//!
//! Rules:
//! 1. One receiver, the connection's task, for the channel's life; any number of senders
//!    (the `Line` every responder of the connection shares). A send after the receiver is
//!    dropped fails and gives the reply back; replies still queued then are dropped.
//! 2. The receiver's waker is kept, as stop.rs keeps a connection's (rule 2 there): a wait by
//!    the task that waited last registers nothing, so a wait that finds the channel empty
//!    costs two loads and no lock. It replaced tokio's unbounded mpsc, whose receiver
//!    registers its waker with two compare-and-swaps on every wait, and a hello request
//!    waits once (session 13: ~180 instructions and two locked ones a request).
//! 3. A send queues the reply under the queue's lock, then wakes the kept waker under the
//!    waker's lock. The receiver registers (under the waker's lock) before it looks at the
//!    queue again, so a reply sent while it registers is either seen or wakes it.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use crate::handler::Reply;
use crate::stop::waker_id;

#[derive(Debug, Default)]
struct Queue {
    replies: VecDeque<Reply>,
    /// The receiver is gone (rule 1).
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// `queue.replies.len()`, written under the queue's lock, read without it.
    waiting: AtomicUsize,
    waker: Mutex<Option<Waker>>,
    /// The data and vtable pointers of the waker in `waker`, written with it by the receiver
    /// only (rule 2).
    kept: [AtomicUsize; 2],
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new channel.
pub(crate) fn channel() -> (Sender, Receiver) {
    let shared = Arc::new(Shared::default());
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

/// The sending side (rule 1).
#[derive(Debug)]
pub(crate) struct Sender(Arc<Shared>);

impl Sender {
    /// Queue `reply` and wake the receiver; the reply back when the receiver is gone.
    pub(crate) fn send(&self, reply: Reply) -> Result<(), Reply> {
        {
            let mut queue = lock(&self.0.queue);
            if queue.closed {
                return Err(reply);
            }
            queue.replies.push_back(reply);
            self.0.waiting.store(queue.replies.len(), Ordering::Release);
        }
        if let Some(waker) = lock(&self.0.waker).as_ref() {
            waker.wake_by_ref();
        }
        Ok(())
    }
}

/// The channel was empty (`Receiver::try_recv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Empty;

/// The receiving side: the connection's task (rule 1).
#[derive(Debug)]
pub(crate) struct Receiver(Arc<Shared>);

impl Receiver {
    /// The next reply, if one is queued.
    pub(crate) fn try_recv(&mut self) -> Result<Reply, Empty> {
        if self.0.waiting.load(Ordering::Acquire) == 0 {
            return Err(Empty);
        }
        let mut queue = lock(&self.0.queue);
        let reply = queue.replies.pop_front().ok_or(Empty);
        self.0.waiting.store(queue.replies.len(), Ordering::Release);
        reply
    }

    /// The next reply, waiting for one. Never `None` (the type is the one `select!`
    /// callers of a channel expect: a sender is kept by the connection's own `Line`).
    pub(crate) async fn recv(&mut self) -> Option<Reply> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Reply>> {
        if let Ok(reply) = self.try_recv() {
            return Poll::Ready(Some(reply));
        }
        let waker = cx.waker();
        let id = waker_id(waker);
        let kept = self
            .0
            .kept
            .iter()
            .zip(id)
            .all(|(kept, id)| kept.load(Ordering::Relaxed) == id);
        if !kept {
            *lock(&self.0.waker) = Some(waker.clone());
            for (kept, id) in self.0.kept.iter().zip(id) {
                kept.store(id, Ordering::Relaxed);
            }
            // Rule 3: a reply queued before the registration is seen here.
            if let Ok(reply) = self.try_recv() {
                return Poll::Ready(Some(reply));
            }
        }
        Poll::Pending
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let dropped = {
            let mut queue = lock(&self.0.queue);
            queue.closed = true;
            self.0.waiting.store(0, Ordering::Release);
            std::mem::take(&mut queue.replies)
        };
        // Dropped outside the lock: a reply may own anything (a file, lent bytes).
        drop(dropped);
        lock(&self.0.waker).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::task::Wake;

    #[derive(Default)]
    struct Flag(AtomicBool);

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    fn data(reply: Option<Reply>) -> Vec<u8> {
        match reply {
            Some(Reply::Data(data)) => data,
            other => panic!("not data: {other:?}"),
        }
    }

    /// Rules 2 and 3: a wait that found nothing is woken by the next send, and a kept
    /// waker is woken again by later sends; replies come in order.
    #[test]
    fn rule_3_a_waiting_receiver_is_woken_by_each_send_and_gets_replies_in_order() {
        let (tx, mut rx) = channel();
        let flag = Arc::new(Flag::default());
        let waker = Waker::from(Arc::clone(&flag));
        let mut cx = Context::from_waker(&waker);
        assert!(rx.poll_recv(&mut cx).is_pending());
        tx.send(Reply::Data(b"one".to_vec())).unwrap();
        assert!(
            flag.0.swap(false, Ordering::SeqCst),
            "the send did not wake"
        );
        tx.send(Reply::Data(b"two".to_vec())).unwrap();
        let Poll::Ready(first) = rx.poll_recv(&mut cx) else {
            panic!("a queued reply was not taken");
        };
        assert_eq!(data(first), b"one");
        assert_eq!(data(rx.try_recv().ok()), b"two");
        assert!(rx.poll_recv(&mut cx).is_pending());
        flag.0.store(false, Ordering::SeqCst);
        tx.send(Reply::Data(b"three".to_vec())).unwrap();
        assert!(
            flag.0.load(Ordering::SeqCst),
            "the kept waker was not woken"
        );
    }

    /// Rule 1: once the receiver is gone a send fails and gives its reply back, and what
    /// was queued is dropped.
    #[test]
    fn rule_1_a_send_after_the_receiver_is_gone_fails() {
        let (tx, rx) = channel();
        tx.send(Reply::End).unwrap();
        drop(rx);
        assert!(matches!(tx.send(Reply::End), Err(Reply::End)));
        assert_eq!(tx.0.waiting.load(Ordering::SeqCst), 0);
        assert!(lock(&tx.0.queue).replies.is_empty());
    }

    /// Rule 3 across threads: every reply sent while the receiver waits is received, none
    /// waits unseen (a lost wake-up would hang the loop).
    #[test]
    fn rule_3_no_reply_is_lost_between_threads() {
        let (tx, mut rx) = channel();
        let sender = std::thread::spawn(move || {
            for n in 0..10_000u32 {
                tx.send(Reply::Data(n.to_le_bytes().to_vec())).unwrap();
            }
            tx
        });
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for n in 0..10_000u32 {
                assert_eq!(data(rx.recv().await), n.to_le_bytes());
            }
        });
        drop(sender.join().unwrap());
    }
}
