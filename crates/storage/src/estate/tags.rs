//! The tag dictionary: every tag key and value seen, kept decrypted in memory and persisted
//! sealed as one record in `store_meta`, so query words can be matched to tag values
//! without unsealing resources.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::model::AWSResource;
use super::storage::EstateStorage;
use crate::crypto::SealContext;
use crate::error::{Result, StorageError};
use crate::store::{Payload, Point};

pub(super) use crate::names::META as DICTIONARY_COLLECTION;
const DICTIONARY_FIELD: &str = "estate_tag_dictionary";
const DICTIONARY_ID: uuid::Uuid = uuid::Uuid::from_u128(0x6573_7461_7465_5f74_6167_5f64_6963_7431);

impl EstateStorage {
    pub(super) async fn load_dictionary(&self) -> Result<()> {
        let records = self
            .store
            .retrieve(DICTIONARY_COLLECTION, vec![DICTIONARY_ID], false)
            .await?;
        let Some(sealed) = records
            .first()
            .and_then(|r| r.payload.get(DICTIONARY_FIELD))
            .and_then(Value::as_str)
        else {
            return Ok(());
        };
        let text = self.sealer.open_str(dictionary_ctx(), sealed)?;
        let map = serde_json::from_str(&text).map_err(|e| StorageError::CorruptRecord {
            collection: DICTIONARY_COLLECTION,
            id: DICTIONARY_ID.to_string(),
            reason: format!("tag dictionary is not JSON: {e}"),
        })?;
        *self.dictionary.lock().unwrap_or_else(|p| p.into_inner()) = map;
        Ok(())
    }

    /// Add tag values to the dictionary; persist it (sealed) when it grew.
    pub(super) async fn remember_tags<'a>(&self, resources: impl Iterator<Item = &'a AWSResource>) -> Result<()> {
        let snapshot = {
            let mut dict = self.dictionary.lock().unwrap_or_else(|p| p.into_inner());
            let mut grew = false;
            for r in resources {
                for (k, v) in r.tags.iter().flatten() {
                    grew |= dict.entry(k.clone()).or_default().insert(v.clone());
                }
            }
            grew.then(|| serde_json::to_string(&*dict).unwrap_or_else(|_| "{}".into()))
        };
        if let Some(text) = snapshot {
            let mut payload = Payload::new();
            payload.insert(
                DICTIONARY_FIELD.into(),
                json!(self.sealer.seal_str(dictionary_ctx(), &text)?),
            );
            self.store
                .upsert(
                    DICTIONARY_COLLECTION,
                    vec![Point {
                        id: DICTIONARY_ID,
                        vectors: BTreeMap::new(),
                        payload,
                    }],
                )
                .await?;
        }
        Ok(())
    }
}

fn dictionary_ctx() -> SealContext<'static> {
    SealContext {
        collection: DICTIONARY_COLLECTION,
        point_id: DICTIONARY_ID,
        field: DICTIONARY_FIELD,
        bound: &[],
    }
}
