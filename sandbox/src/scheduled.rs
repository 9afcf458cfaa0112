//! Edits scheduled to land after the integration's next reads (both CRMs' `person_edit`
//! fault): a person's change between a sync's read and its write; or, scheduled after
//! none, as the next read arrives, before it is answered (a change the sync has not
//! read yet, made while it works on another).

/// Scheduled items, each with the integration reads still to come before it is due.
#[derive(Debug)]
pub struct AfterReads<T> {
    items: Vec<(u32, T)>,
}

impl<T> Default for AfterReads<T> {
    fn default() -> Self {
        AfterReads { items: Vec::new() }
    }
}

impl<T> AfterReads<T> {
    /// Due after `reads` more reads; `0`: before the next one is answered.
    pub fn schedule(&mut self, reads: u32, item: T) {
        self.items.push((reads, item));
    }

    /// A read arrived: the items due before it is answered.
    pub fn before_read(&mut self) -> Vec<T> {
        let (due, later): (Vec<_>, Vec<_>) = self.items.drain(..).partition(|(n, _)| *n == 0);
        self.items = later;
        due.into_iter().map(|(_, item)| item).collect()
    }

    /// One read happened: the items now due, in the order they were scheduled.
    pub fn read(&mut self) -> Vec<T> {
        let mut due = Vec::new();
        let mut later = Vec::new();
        for (left, item) in self.items.drain(..) {
            if left <= 1 {
                due.push(item);
            } else {
                later.push((left - 1, item));
            }
        }
        self.items = later;
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_due_after_their_reads() {
        let mut s = AfterReads::default();
        s.schedule(2, "b");
        s.schedule(1, "a");
        s.schedule(0, "now");
        assert_eq!(s.before_read(), ["now"]);
        assert_eq!(s.read(), ["a"]);
        assert!(s.before_read().is_empty());
        assert_eq!(s.read(), ["b"]);
        assert!(s.read().is_empty());
    }
}
