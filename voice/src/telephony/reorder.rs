//! A bounded reorder buffer: takes items numbered by a sequence (in any order) and hands them
//! on in order, waiting for a missing number only until `window` later numbers have arrived.
//!
//! Telnyx does not guarantee the order of media frames; audio played out of order is worse
//! than a short gap, and waiting forever for a lost frame stalls the call. So a missing frame
//! is given up once a frame `window` places after it has arrived: the buffer reports a
//! [`Reordered::Gap`] and moves on, and the missing frame, if it comes later, is reported as
//! [`Reordered::Late`] and dropped. At most `window - 1` items are ever held.

use std::collections::BTreeMap;

/// What [`ReorderBuffer::push`] hands on, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reordered<T> {
    /// The next item.
    Item { seq: u64, item: T },
    /// `count` numbers from `first` on were skipped: they did not arrive within the window.
    Gap { first: u64, count: u64 },
    /// An item whose place had already been passed; dropped.
    Late { seq: u64 },
    /// A second item with a number still held; dropped.
    Duplicate { seq: u64 },
}

/// Counters since the buffer was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReorderStats {
    /// Items handed on.
    pub emitted: u64,
    /// Items handed on that had arrived ahead of an earlier one.
    pub reordered: u64,
    /// Gaps reported, and the numbers they skipped.
    pub gaps: u64,
    pub missing: u64,
    pub late: u64,
    pub duplicates: u64,
}

#[derive(Debug)]
pub struct ReorderBuffer<T> {
    window: u64,
    next: Option<u64>,
    pending: BTreeMap<u64, T>,
    stats: ReorderStats,
}

impl<T> ReorderBuffer<T> {
    /// Starts at the first number pushed. `window` 0 is taken as 1 (no waiting at all).
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1) as u64,
            next: None,
            pending: BTreeMap::new(),
            stats: ReorderStats::default(),
        }
    }

    /// Expects `first` as the first number, so items arriving before it are held for it.
    pub fn starting_at(first: u64, window: usize) -> Self {
        Self { next: Some(first), ..Self::new(window) }
    }

    /// Takes item `seq` and returns what can now be handed on.
    pub fn push(&mut self, seq: u64, item: T) -> Vec<Reordered<T>> {
        let mut out = Vec::new();
        self.push_into(seq, item, &mut out);
        out
    }

    /// [`Self::push`] appending to `out`, for callers that reuse a buffer.
    pub fn push_into(&mut self, seq: u64, item: T, out: &mut Vec<Reordered<T>>) {
        let next = *self.next.get_or_insert(seq);
        if seq < next {
            self.stats.late += 1;
            out.push(Reordered::Late { seq });
            return;
        }
        if self.pending.contains_key(&seq) {
            self.stats.duplicates += 1;
            out.push(Reordered::Duplicate { seq });
            return;
        }
        if seq != next {
            self.stats.reordered += 1;
        }
        self.pending.insert(seq, item);
        self.drain_ready(out);
        // Give up on missing numbers while the newest item is a full window past them.
        while let (Some(next), Some(&newest)) = (self.next, self.pending.keys().next_back()) {
            // Held numbers are never below `next`, so this cannot underflow.
            if newest - next < self.window {
                break;
            }
            self.skip_to_first_pending(out);
            self.drain_ready(out);
        }
    }

    /// Hands on everything still held, in order, with the gaps between (end of stream).
    pub fn flush(&mut self) -> Vec<Reordered<T>> {
        let mut out = Vec::new();
        while !self.pending.is_empty() {
            self.skip_to_first_pending(&mut out);
            self.drain_ready(&mut out);
        }
        out
    }

    /// The number the buffer waits for next (`None` before the first push of [`Self::new`]).
    pub fn next_expected(&self) -> Option<u64> {
        self.next
    }

    /// How many items are held waiting for an earlier one.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn stats(&self) -> ReorderStats {
        self.stats
    }

    fn drain_ready(&mut self, out: &mut Vec<Reordered<T>>) {
        while let Some(next) = self.next {
            let Some(item) = self.pending.remove(&next) else { break };
            self.stats.emitted += 1;
            out.push(Reordered::Item { seq: next, item });
            // At u64::MAX there is no next number: stay there and treat anything else as late.
            self.next = Some(next.saturating_add(1));
            if next == u64::MAX {
                break;
            }
        }
    }

    fn skip_to_first_pending(&mut self, out: &mut Vec<Reordered<T>>) {
        let (Some(next), Some(&first)) = (self.next, self.pending.keys().next()) else { return };
        if first > next {
            let count = first - next;
            self.stats.gaps += 1;
            self.stats.missing += count;
            out.push(Reordered::Gap { first: next, count });
        }
        self.next = Some(first);
    }
}
