//! `keys rekey` for chat (see [`crate::rekey`]): messages and conversations sealed in an
//! older format or under an older data key are sealed again, payload fields only (vectors
//! and clear fields stay).

use super::schema::{self, ConversationField as CF, MessageField as MF, CONVERSATIONS, MESSAGES};
use super::{ChatStorage, PAGE};
use crate::error::Result;
use crate::rekey::{all_current, Resealed};
use crate::store::ScrollRequest;

impl ChatStorage {
    /// Reseal every message that is not current; `progress(done)` after each page.
    pub(crate) async fn reseal_messages(&self, progress: &(dyn Fn(u64) + Send + Sync)) -> Result<Resealed> {
        let mut out = Resealed::default();
        let mut offset = None;
        loop {
            let page = self.store.scroll(MESSAGES, all_records(offset)).await?;
            for record in &page.records {
                out.scanned += 1;
                if all_current(record, &[MF::Content.as_str(), MF::Metadata.as_str()], &self.sealer) {
                    continue;
                }
                let message = schema::message_from_record(record, &self.sealer)?;
                let slot = self.slot(&message.context_id);
                let guard = slot.lock().await;
                if guard.as_ref().is_some_and(|s| s.deleted) {
                    continue;
                }
                let sealed = schema::message_sealed_fields(&message, &self.sealer)?;
                self.store.set_payload(MESSAGES, vec![record.id], sealed).await?;
                out.resealed += 1;
            }
            progress(out.scanned);
            match page.next_offset.filter(|_| !page.records.is_empty()) {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }

    /// Reseal every conversation that is not current (title and metadata as one write).
    pub(crate) async fn reseal_conversations(&self, progress: &(dyn Fn(u64) + Send + Sync)) -> Result<Resealed> {
        let mut out = Resealed::default();
        let mut offset = None;
        loop {
            let page = self.store.scroll(CONVERSATIONS, all_records(offset)).await?;
            for record in &page.records {
                out.scanned += 1;
                if all_current(record, &[CF::Title.as_str(), CF::Metadata.as_str()], &self.sealer) {
                    continue;
                }
                let read = schema::conversation_from_record(record, &self.sealer)?;
                let slot = self.slot(&read.context_id);
                let guard = slot.lock().await;
                if guard.as_ref().is_some_and(|s| s.deleted) {
                    continue;
                }
                // Read again under the lock: an update may have landed since the page was read.
                let Some(now) = self
                    .store
                    .retrieve(CONVERSATIONS, vec![record.id], crate::store::VectorSelection::None)
                    .await?
                    .into_iter()
                    .next()
                else {
                    continue;
                };
                let c = schema::conversation_from_record(&now, &self.sealer)?;
                let sealed =
                    schema::seal_conversation_fields(&c.context_id, &c.user_id, &c.title, &c.metadata, &self.sealer)?;
                self.store.set_payload(CONVERSATIONS, vec![record.id], sealed).await?;
                out.resealed += 1;
            }
            progress(out.scanned);
            match page.next_offset.filter(|_| !page.records.is_empty()) {
                Some(next) => offset = Some(next),
                None => return Ok(out),
            }
        }
    }
}

fn all_records(offset: Option<crate::store::PointId>) -> ScrollRequest {
    ScrollRequest {
        limit: PAGE,
        offset,
        ..ScrollRequest::default()
    }
}
