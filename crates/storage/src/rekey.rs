//! `keys rekey`: every record sealed in an older format or under an older data key is sealed
//! again under the active key, with the same plaintext and the same vectors. After a key
//! epoch (a replaced recovery kit, `keys rotate --new-epoch`), the old data key, with the
//! kit or key file that wrapped it, then opens nothing in the live store; fields written in
//! formats 1 and 2 gain the bindings of format 3.
//!
//! Resumable: records already current are skipped by their header alone (no decryption), so
//! an interrupted run picks up where it stopped. The service stays usable while it runs:
//! conversations and messages are resealed under their conversation's lock, resources under
//! the estate's writer lock (estate writes wait for that pass), so no concurrent update is
//! overwritten with an older value.

use serde::Serialize;
use serde_json::Value;

use crate::crypto::Sealer;
use crate::store::Record;

/// What `keys rekey` did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RekeyReport {
    /// The data key every record is sealed under now.
    pub active_key_id: u32,
    /// Messages.
    pub messages: Resealed,
    /// Conversations.
    pub conversations: Resealed,
    /// Estate resources.
    pub resources: Resealed,
}

/// Records of one kind looked at and sealed again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Resealed {
    /// Records looked at.
    pub scanned: u64,
    /// Records sealed again (the others were current already, or deleted meanwhile).
    pub resealed: u64,
}

/// Whether every sealed field of `record` among `fields` is current (a missing field is: the
/// reader decides whether it may be missing).
pub(crate) fn all_current(record: &Record, fields: &[&str], sealer: &Sealer) -> bool {
    fields.iter().all(|f| match record.payload.get(*f) {
        Some(Value::String(sealed)) => sealer.is_current(sealed),
        _ => true,
    })
}
