//! Event delivery: one bounded queue and one thread per sink.
//!
//! The capture loop [`Sinks::send`]s each event to every sink's [`Queue`] and never waits: a
//! sink that is slow or down fills its own queue, and a full queue drops its oldest event and
//! counts it. A sink's thread delivers the event at the front and removes it only once
//! delivered (at least once, in order); a failed delivery is retried with capped backoff.

pub mod jsonl;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::detect::Event;

/// Somewhere events go.
pub trait Sink: Send {
    /// Delivers one event; an error means "not delivered, try again later".
    fn deliver(&mut self, event: &Event) -> Result<(), String>;
}

/// A bounded queue of events, drop-oldest when full.
pub struct Queue {
    items: Mutex<VecDeque<(u64, Event)>>,
    ready: Condvar,
    capacity: usize,
    next_seq: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    closed: AtomicBool,
}

/// A queue's counters.
#[derive(Clone, Copy, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    pub queued: usize,
    pub delivered: u64,
    pub dropped: u64,
}

impl Queue {
    pub fn new(capacity: usize) -> Queue {
        Queue {
            items: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            ready: Condvar::new(),
            capacity: capacity.max(1),
            next_seq: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<(u64, Event)>> {
        // a sink thread that panicked leaves the queue as it was: keep using it
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds an event; when full, the oldest waiting event is dropped and counted.
    pub fn push(&self, e: Event) {
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let mut q = self.lock();
        if q.len() >= self.capacity {
            q.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        q.push_back((seq, e));
        drop(q);
        self.ready.notify_one();
    }

    /// The event at the front (a copy), waiting up to `timeout` for one.
    fn front(&self, timeout: Duration) -> Option<(u64, Event)> {
        let q = self.lock();
        let (q, _) = self
            .ready
            .wait_timeout_while(q, timeout, |q| {
                q.is_empty() && !self.closed.load(Ordering::Relaxed)
            })
            .unwrap_or_else(|p| p.into_inner());
        q.front().cloned()
    }

    /// Removes the front event if it is still the one delivered (`seq`).
    fn done(&self, seq: u64) {
        let mut q = self.lock();
        if q.front().is_some_and(|(s, _)| *s == seq) {
            q.pop_front();
        }
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> QueueStats {
        QueueStats {
            queued: self.lock().len(),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.ready.notify_all();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// One running sink: its queue and its thread.
struct Running {
    name: String,
    queue: Arc<Queue>,
    thread: JoinHandle<()>,
}

/// Every sink of the daemon.
#[derive(Default)]
pub struct Sinks {
    running: Vec<Running>,
}

/// Longest wait between two attempts to deliver to a failing sink.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl Sinks {
    /// Starts `sink` on its own thread behind a queue of `capacity` events.
    pub fn start(&mut self, name: &str, mut sink: Box<dyn Sink>, capacity: usize) {
        let queue = Arc::new(Queue::new(capacity));
        let q = Arc::clone(&queue);
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(format!("sink-{name}"))
            .spawn(move || {
                let mut backoff = Duration::from_millis(100);
                loop {
                    let Some((seq, e)) = q.front(Duration::from_millis(500)) else {
                        if q.is_closed() {
                            return;
                        }
                        continue;
                    };
                    match sink.deliver(&e) {
                        Ok(()) => {
                            q.done(seq);
                            backoff = Duration::from_millis(100);
                        }
                        Err(why) => {
                            log::warn!("sink {label}: {why}; retrying in {backoff:?}");
                            if q.is_closed() {
                                return;
                            }
                            std::thread::sleep(backoff);
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
            })
            .expect("spawning a thread");
        self.running.push(Running {
            name: name.to_string(),
            queue,
            thread,
        });
    }

    /// Queues an event for every sink; never waits.
    pub fn send(&self, e: &Event) {
        for r in &self.running {
            r.queue.push(e.clone());
        }
    }

    /// Each sink's name and counters.
    pub fn stats(&self) -> Vec<(String, QueueStats)> {
        self.running
            .iter()
            .map(|r| (r.name.clone(), r.queue.stats()))
            .collect()
    }

    /// Gives the sinks until `deadline` to deliver what waits, then stops them; returns the
    /// events left undelivered.
    pub fn shutdown(self, deadline: Instant) -> usize {
        while Instant::now() < deadline && self.running.iter().any(|r| r.queue.stats().queued > 0) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let mut left = 0;
        for r in self.running {
            left += r.queue.stats().queued;
            r.queue.close();
            if r.queue.stats().queued == 0 {
                let _ = r.thread.join();
            } else {
                log::warn!(
                    "sink {}: {} events not delivered at exit",
                    r.name,
                    r.queue.stats().queued
                );
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{DeviceRef, EventKind, Severity, ThresholdSource};

    fn event(n: u64) -> Event {
        Event {
            kind: EventKind::NewDevice,
            phase: None,
            incident: Some(n),
            device: DeviceRef {
                mac: "02:00:00:00:00:01".into(),
                ipv4: vec![],
                ipv6: vec![],
                name: String::new(),
                vendor_class: String::new(),
                randomized: false,
            },
            window_start: String::new(),
            window_end: String::new(),
            window_start_epoch: n,
            score: 0.0,
            threshold: 1.0,
            threshold_source: ThresholdSource::Population,
            severity: Severity::Low,
            explanation: vec![],
            detail: None,
        }
    }

    /// Fails its first `fail` deliveries, then records what it delivered.
    struct Flaky {
        fail: u32,
        got: Arc<Mutex<Vec<u64>>>,
    }

    impl Sink for Flaky {
        fn deliver(&mut self, e: &Event) -> Result<(), String> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err("down".into());
            }
            self.got.lock().unwrap().push(e.window_start_epoch);
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_it() {
        let q = Queue::new(3);
        for n in 0..5 {
            q.push(event(n));
        }
        let st = q.stats();
        assert_eq!((st.queued, st.dropped), (3, 2));
        let (seq, e) = q.front(Duration::ZERO).unwrap();
        assert_eq!((seq, e.window_start_epoch), (2, 2));
    }

    #[test]
    fn a_failing_sink_gets_every_event_in_order() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let mut sinks = Sinks::default();
        let flaky = Flaky {
            fail: 2,
            got: Arc::clone(&got),
        };
        sinks.start("flaky", Box::new(flaky), 100);
        for n in 0..10 {
            sinks.send(&event(n));
        }
        let left = sinks.shutdown(Instant::now() + Duration::from_secs(5));
        assert_eq!(left, 0);
        assert_eq!(*got.lock().unwrap(), (0..10).collect::<Vec<u64>>());
    }
}
