//! Reads of one kind that wait at the rate limiter at the same time leave as one call.
//!
//! Under a stream of edits, several workers each sync a batch of one or two records,
//! and each batch reads the same way (the records by id, their associations, the check
//! before a write): four workers waiting at the limiter with a read of one contact each
//! spend four of HubSpot's 19 calls a second where one call of four ids would do. So the
//! first read of a kind opens a group and waits at the limiter; reads of the same kind
//! that come while it waits join it, and when the limiter admits the call it is sealed
//! and carries every member's ids. A read the limiter admits at once goes alone: nothing
//! waits longer than it would have.
//!
//! Reads of one object by id are one kind whatever properties they ask for (the check
//! before a write asks for the written ones only, a batch's read for all): the call asks
//! for every member's properties, and each member keeps its own.
//!
//! Updates go the same way (`join_write`): each member brings its inputs, and a member
//! whose record the group already writes waits for a group of its own (one call may
//! name a record once). HubSpot refuses a whole batch for one bad input: a refused
//! group's members then write alone, so the refusal stays with the input it is about.
//!
//! A group's leader that is dropped before its answer (its batch given up) lets its
//! members go: each reads for itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::oneshot;

use super::HubSpotError;

/// A call's answer, shared by the group's members.
#[derive(Debug)]
pub(crate) struct Answer {
    /// Every member's ids, as the call named them.
    pub ids: Vec<String>,
    /// Every member's fields (a read's properties), as the call asked for them.
    pub fields: Vec<String>,
    pub body: Value,
}

pub(super) type Shared = Result<Arc<Answer>, HubSpotError>;

#[derive(Default)]
struct Group {
    ids: Vec<String>,
    /// What a read asks for of each record (properties), every member's, each once.
    fields: Vec<String>,
    /// A write's inputs, one per id (empty for reads).
    inputs: Vec<Value>,
    sealed: bool,
    members: Vec<oneshot::Sender<Shared>>,
}

impl Group {
    /// The group's ids with `ids` added (each once).
    fn with(&self, ids: &[String]) -> Vec<String> {
        let mut all = self.ids.clone();
        for id in ids {
            if !all.contains(id) {
                all.push(id.clone());
            }
        }
        all
    }

    /// Adds the ids and fields it does not carry yet, each once.
    fn add(&mut self, ids: &[String], fields: &[String]) {
        for id in ids {
            if !self.ids.contains(id) {
                self.ids.push(id.clone());
            }
        }
        for f in fields {
            if !self.fields.contains(f) {
                self.fields.push(f.clone());
            }
        }
    }
}

/// Whether a record a shared read answered for (by its id) is one this member asked
/// for: its own, or one no member named (a merged record answers for the id it
/// absorbed).
pub(super) fn answers(mine: &[String], asked: &[String], id: &str) -> bool {
    mine.iter().any(|m| m == id) || !asked.iter().any(|a| a == id)
}

/// The open groups, by kind (endpoint and everything in the body but the ids).
#[derive(Debug, Default)]
pub(super) struct Together {
    open: Mutex<HashMap<String, Arc<Mutex<Group>>>>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("ids", &self.ids.len())
            .field("sealed", &self.sealed)
            .finish()
    }
}

/// What joining gave: the answer to wait for, or the group to lead.
pub(super) enum Joined<'a> {
    Member(oneshot::Receiver<Shared>),
    Leader(Lead<'a>),
}

/// The leader's hold on its group: seals it when the call goes, answers its members,
/// and on drop without an answer lets them go.
pub(super) struct Lead<'a> {
    together: &'a Together,
    kind: String,
    group: Arc<Mutex<Group>>,
    answered: bool,
}

/// A member of `group`: it waits for the leader's answer.
fn member<'a>(group: &mut Group) -> Joined<'a> {
    let (tx, rx) = oneshot::channel();
    group.members.push(tx);
    Joined::Member(rx)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Together {
    /// Joins the open group of `kind` when one call can carry its ids and `ids`
    /// (`fits`: at most so many ids, or a search's filter groups), else opens a group
    /// and leads it. The call asks for `fields` too.
    pub(super) fn join(
        &self,
        kind: &str,
        ids: &[String],
        fields: &[String],
        fits: &(dyn Fn(&[String]) -> bool + Sync),
    ) -> Joined<'_> {
        let mut open = lock(&self.open);
        if let Some(group) = open.get(kind) {
            let mut g = lock(group);
            if !g.sealed && fits(&g.with(ids)) {
                g.add(ids, fields);
                return member(&mut g);
            }
        }
        let mut group = Group::default();
        group.add(ids, fields);
        self.lead(&mut open, kind, group)
    }

    /// Joins the open group of writes of `kind` when it has room for `inputs` (id,
    /// input) and writes none of their records yet, else opens a group and leads it.
    pub(super) fn join_write(
        &self,
        kind: &str,
        inputs: &[(String, Value)],
        cap: usize,
    ) -> Joined<'_> {
        let ids: Vec<String> = inputs.iter().map(|(id, _)| id.clone()).collect();
        let mut open = lock(&self.open);
        if let Some(group) = open.get(kind) {
            let mut g = lock(group);
            let apart = ids.iter().all(|id| !g.ids.contains(id));
            if !g.sealed && apart && g.ids.len() + ids.len() <= cap {
                g.ids.extend(ids);
                g.inputs.extend(inputs.iter().map(|(_, i)| i.clone()));
                return member(&mut g);
            }
        }
        let group = Group {
            ids,
            inputs: inputs.iter().map(|(_, i)| i.clone()).collect(),
            ..Group::default()
        };
        self.lead(&mut open, kind, group)
    }

    /// Opens `group` as the open one of `kind`, led by the caller.
    fn lead(
        &self,
        open: &mut HashMap<String, Arc<Mutex<Group>>>,
        kind: &str,
        group: Group,
    ) -> Joined<'_> {
        let group = Arc::new(Mutex::new(group));
        open.insert(kind.to_owned(), group.clone());
        Joined::Leader(Lead {
            together: self,
            kind: kind.to_owned(),
            group,
            answered: false,
        })
    }

    /// Closes `group` to new members (a later read of its kind opens another).
    fn close(&self, kind: &str, group: &Arc<Mutex<Group>>) {
        let mut open = lock(&self.open);
        if open.get(kind).is_some_and(|g| Arc::ptr_eq(g, group)) {
            open.remove(kind);
        }
    }
}

impl Lead<'_> {
    /// The call is going: no one joins any more. Returns every member's ids and fields.
    pub(super) fn seal(&self) -> (Vec<String>, Vec<String>) {
        self.together.close(&self.kind, &self.group);
        let mut g = lock(&self.group);
        g.sealed = true;
        (g.ids.clone(), g.fields.clone())
    }

    /// [`Lead::seal`] for writes: every member's ids, their inputs, and whether any
    /// member but the leader is in.
    pub(super) fn seal_write(&self) -> (Vec<String>, Vec<Value>, bool) {
        self.together.close(&self.kind, &self.group);
        let mut g = lock(&self.group);
        g.sealed = true;
        (g.ids.clone(), g.inputs.clone(), !g.members.is_empty())
    }

    /// Hands the answer to every member.
    pub(super) fn answer(mut self, answer: &Shared) {
        self.answered = true;
        self.together.close(&self.kind, &self.group);
        let members = std::mem::take(&mut lock(&self.group).members);
        for m in members {
            let _ = m.send(answer.clone());
        }
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.answered {
            // The members' senders go with the group: each member reads for itself.
            self.together.close(&self.kind, &self.group);
            let mut g = lock(&self.group);
            g.sealed = true;
            g.members.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(n: usize) -> impl Fn(&[String]) -> bool + Sync {
        move |all| all.len() <= n
    }

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn reads_of_one_kind_join_while_there_is_room() {
        let t = Together::default();
        let first = t.join("k", &ids(&["1", "2"]), &[], &cap(4));
        assert!(matches!(first, Joined::Leader(_)), "the first read leads");
        assert!(
            matches!(
                t.join("k", &ids(&["2", "3"]), &[], &cap(4)),
                Joined::Member(_)
            ),
            "a read of the same kind joins (2 is in already: room for 1 more)"
        );
        assert!(
            matches!(
                t.join("other", &ids(&["1"]), &[], &cap(4)),
                Joined::Leader(_)
            ),
            "another kind has its own group"
        );
        assert!(
            matches!(
                t.join("k", &ids(&["4", "5"]), &[], &cap(4)),
                Joined::Leader(_)
            ),
            "a read that does not fit opens a group of its own"
        );
        drop(first);
    }

    #[tokio::test]
    async fn the_sealed_call_carries_every_members_ids_once_and_answers_them() {
        let t = Together::default();
        let Joined::Leader(lead) = t.join("k", &ids(&["1", "2"]), &ids(&["a"]), &cap(10)) else {
            panic!("the first read leads");
        };
        let Joined::Member(a) = t.join("k", &ids(&["2", "3", "3"]), &ids(&["b", "a"]), &cap(10))
        else {
            panic!("joins");
        };
        let (sealed, fields) = lead.seal();
        assert_eq!(sealed, ids(&["1", "2", "3"]));
        assert_eq!(fields, ids(&["a", "b"]), "every member's fields, once");
        assert!(
            matches!(t.join("k", &ids(&["4"]), &[], &cap(10)), Joined::Leader(_)),
            "a sealed group takes no one"
        );
        lead.answer(&Ok(Arc::new(Answer {
            ids: sealed,
            fields,
            body: Value::from(7),
        })));
        let got = a.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.ok().map(|a| a.body.clone()), Some(Value::from(7)));
    }

    #[test]
    fn writes_join_only_a_group_that_does_not_write_their_records() {
        let t = Together::default();
        let input = |id: &str| (id.to_owned(), Value::from(id));
        let Joined::Leader(lead) = t.join_write("w", &[input("1")], 3) else {
            panic!("the first write leads");
        };
        assert!(
            matches!(t.join_write("w", &[input("2")], 3), Joined::Member(_)),
            "another record's write joins"
        );
        assert!(
            matches!(
                t.join_write("w", &[input("3"), input("4")], 3),
                Joined::Leader(_)
            ),
            "a write that does not fit leads its own"
        );
        let Joined::Leader(again) = t.join_write("w", &[input("3")], 3) else {
            panic!("a record the open group writes already: a group of its own");
        };
        let (sealed, inputs, others) = lead.seal_write();
        assert_eq!(sealed, ids(&["1", "2"]));
        assert_eq!(inputs, vec![Value::from("1"), Value::from("2")]);
        assert!(others, "another write is in");
        assert!(!again.seal_write().2, "alone");
    }

    #[tokio::test]
    async fn members_of_a_leader_given_up_are_let_go() {
        let t = Together::default();
        let Joined::Leader(lead) = t.join("k", &ids(&["1"]), &[], &cap(10)) else {
            panic!("the first read leads");
        };
        let Joined::Member(a) = t.join("k", &ids(&["2"]), &[], &cap(10)) else {
            panic!("joins");
        };
        drop(lead);
        assert!(a.await.is_err(), "the member hears its leader is gone");
        assert!(
            matches!(t.join("k", &ids(&["3"]), &[], &cap(10)), Joined::Leader(_)),
            "and the next read leads"
        );
    }
}
