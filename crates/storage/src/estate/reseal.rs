//! `keys rekey` for the estate (see [`crate::rekey`]): resources sealed in an older format or
//! under an older data key are sealed again (the seven sealed fields and their fingerprint;
//! vectors, tokens and clear fields stay), under the writer lock so no sync interleaves, and
//! the tag dictionary.

use super::schema::{self, field};
use super::storage::{next_offset, EstateStorage};
use crate::error::Result;
use crate::rekey::{all_current, Resealed};
use crate::store::{Filter, Payload};

/// Resources per page.
const PAGE: usize = 500;

impl EstateStorage {
    /// Reseal every resource that is not current; `progress(done)` after each page.
    pub(crate) async fn reseal_resources(&self, progress: &(dyn Fn(u64) + Send + Sync)) -> Result<Resealed> {
        let _guard = self.writer.lock().await;
        let mut out = Resealed::default();
        let mut offset = None;
        let everything = Filter::default();
        loop {
            let page = self.page(&everything, PAGE, offset).await?;
            for record in &page.records {
                out.scanned += 1;
                if all_current(record, schema::SEALED_FIELDS, &self.sealer) {
                    continue;
                }
                let resource = schema::resource_from_record(record, &self.sealer)?;
                let point = schema::resource_to_point(&resource, &self.keys(), &self.sealer)?;
                let sealed: Payload = point
                    .payload
                    .into_iter()
                    .filter(|(k, _)| schema::SEALED_FIELDS.contains(&k.as_str()) || k == field::FINGERPRINT)
                    .collect();
                self.store.set_payload(schema::ESTATE, vec![record.id], sealed).await?;
                out.resealed += 1;
            }
            progress(out.scanned);
            match next_offset(&page) {
                Some(next) => offset = Some(next),
                None => break,
            }
        }
        if self.reseal_dictionary().await? {
            tracing::debug!("tag dictionary sealed again under the active key");
        }
        Ok(out)
    }
}
