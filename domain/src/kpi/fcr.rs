//! First-contact resolution: which contacts are first contacts and which repeat one.
//!
//! A customer's contacts form chains: a contact more than 7 days after the customer's previous
//! one (or their very first) is a **first contact**; a contact within 7 days of the previous
//! one continues the chain. A first contact is **repeated** when the next contact of its chain
//! comes within 7 days (inclusive), i.e. when the chain has a second contact. So FCR of a period
//! is final 7 days after the period ends.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The FCR window in days.
pub const FCR_WINDOW_DAYS: i64 = 7;

/// What a projection keeps per customer (contact or caller number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactChain {
    /// The chain's first contact.
    pub first_at: DateTime<Utc>,
    /// Its latest contact.
    pub last_at: DateTime<Utc>,
    /// Contacts in the chain so far.
    pub contacts: u32,
}

/// What a new contact means for the KPI buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContactEffect {
    /// A first contact: count it in its own minute.
    FirstContact,
    /// The first repeat of the chain's first contact: count a repeat in `first_at`'s minute.
    RepeatOfFirstContact {
        /// When the repeated first contact was.
        first_at: DateTime<Utc>,
    },
    /// A later contact of a chain already repeated: nothing to count.
    Repeat,
}

/// A contact at `at`, given the customer's chain so far (contacts in time order): the chain
/// after it and what to count.
pub fn observe_contact(chain: Option<&ContactChain>, at: DateTime<Utc>) -> (ContactChain, ContactEffect) {
    match chain {
        Some(c) if at - c.last_at <= Duration::days(FCR_WINDOW_DAYS) => {
            let effect = if c.contacts == 1 {
                ContactEffect::RepeatOfFirstContact { first_at: c.first_at }
            } else {
                ContactEffect::Repeat
            };
            let next =
                ContactChain { last_at: at.max(c.last_at), contacts: c.contacts.saturating_add(1), ..*c };
            (next, effect)
        }
        _ => (ContactChain { first_at: at, last_at: at, contacts: 1 }, ContactEffect::FirstContact),
    }
}
