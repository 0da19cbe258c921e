//! The tag dictionary: every tag key and value seen, kept decrypted in memory and persisted
//! sealed as one record in `store_meta`, so query words can be matched to tag values
//! without unsealing resources.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::model::AWSResource;
use super::storage::EstateStorage;
use crate::crypto::SealContext;
use crate::error::{Result, StorageError};
use crate::store::{Condition, Filter, Payload, Point, VectorSelection};

pub(super) use crate::names::META as DICTIONARY_COLLECTION;
const DICTIONARY_FIELD: &str = "estate_tag_dictionary";
/// Version of the stored dictionary, bumped by every write (compare-and-set between writers).
const VERSION_FIELD: &str = "version";
/// Tries of a dictionary write that keeps losing the race to other writers.
const MAX_ATTEMPTS: usize = 50;
const DICTIONARY_ID: uuid::Uuid = uuid::Uuid::from_u128(0x6573_7461_7465_5f74_6167_5f64_6963_7431);

/// The tag dictionary as stored: its version (bumped by every write) and its entries.
struct Stored {
    version: i64,
    sealed: String,
    map: Dictionary,
}

type Dictionary = BTreeMap<String, std::collections::BTreeSet<String>>;

impl EstateStorage {
    async fn read_dictionary(&self) -> Result<Option<Stored>> {
        let records = self
            .store
            .retrieve(DICTIONARY_COLLECTION, vec![DICTIONARY_ID], VectorSelection::None)
            .await?;
        let Some(record) = records.first() else {
            return Ok(None);
        };
        let Some(sealed) = record.payload.get(DICTIONARY_FIELD).and_then(Value::as_str) else {
            return Ok(None);
        };
        let text = self.sealer.open_str(dictionary_ctx(), sealed)?;
        let map = serde_json::from_str(&text).map_err(|e| StorageError::CorruptRecord {
            collection: DICTIONARY_COLLECTION,
            id: DICTIONARY_ID.to_string(),
            reason: format!("tag dictionary is not JSON: {e}"),
        })?;
        Ok(Some(Stored {
            // Dictionaries written before versions existed count as version 0.
            version: record.payload.get(VERSION_FIELD).and_then(Value::as_i64).unwrap_or(0),
            sealed: sealed.to_string(),
            map,
        }))
    }

    pub(super) async fn load_dictionary(&self) -> Result<()> {
        if let Some(stored) = self.read_dictionary().await? {
            *self.dictionary.lock().unwrap_or_else(|p| p.into_inner()) = stored.map;
        }
        Ok(())
    }

    /// Add tag values to the dictionary; persist it (sealed) when it grew.
    ///
    /// Several writers (processes sharing a server) may grow it at once: each write is a
    /// compare-and-set on the stored version, merged with what the others stored, and
    /// retried until it lands, so no writer's tags are lost.
    pub(super) async fn remember_tags<'a>(&self, resources: impl Iterator<Item = &'a AWSResource>) -> Result<()> {
        let grew = {
            let mut dict = self.dictionary.lock().unwrap_or_else(|p| p.into_inner());
            let mut grew = false;
            for r in resources {
                for (k, v) in r.tags.iter().flatten() {
                    grew |= dict.entry(k.clone()).or_default().insert(v.clone());
                }
            }
            grew
        };
        if !grew {
            return Ok(());
        }
        self.persist_dictionary().await
    }

    /// Seal the dictionary again under the active key if it is stored in an older format or
    /// under an older key (`keys rekey`); `true` when it was.
    pub(super) async fn reseal_dictionary(&self) -> Result<bool> {
        match self.read_dictionary().await? {
            Some(stored) if !self.sealer.is_current(&stored.sealed) => {
                self.persist_dictionary().await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Store the dictionary in memory merged with the stored one, unless the stored one
    /// already holds exactly that under the active key.
    async fn persist_dictionary(&self) -> Result<()> {
        for _attempt in 0..MAX_ATTEMPTS {
            let stored = self.read_dictionary().await?;
            let merged = {
                let mut dict = self.dictionary.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(stored) = &stored {
                    for (k, values) in &stored.map {
                        dict.entry(k.clone()).or_default().extend(values.iter().cloned());
                    }
                }
                if stored
                    .as_ref()
                    .is_some_and(|s| s.map == *dict && self.sealer.is_current(&s.sealed))
                {
                    return Ok(());
                }
                serde_json::to_string(&*dict).unwrap_or_else(|_| "{}".into())
            };
            let sealed = self.sealer.seal_str(dictionary_ctx(), &merged)?;
            let version = stored.as_ref().map_or(0, |s| s.version);
            let mut payload = Payload::new();
            payload.insert(DICTIONARY_FIELD.into(), json!(sealed));
            payload.insert(VERSION_FIELD.into(), json!(version + 1));
            match &stored {
                None => {
                    let point = Point {
                        id: DICTIONARY_ID,
                        vectors: BTreeMap::new(),
                        payload,
                    };
                    if self.store.insert_if_absent(DICTIONARY_COLLECTION, point).await? {
                        return Ok(());
                    }
                }
                Some(previous) => {
                    // Only over the version read; a dictionary without a version field (older
                    // stores) is matched by its sealed text.
                    let same = if previous.version == 0 {
                        Condition::Eq(DICTIONARY_FIELD.into(), previous.sealed.clone().into())
                    } else {
                        Condition::Eq(VERSION_FIELD.into(), previous.version.into())
                    };
                    let only_if_unchanged = Filter::must(Condition::HasId(vec![DICTIONARY_ID])).and(same);
                    self.store
                        .set_payload_by_filter(DICTIONARY_COLLECTION, only_if_unchanged, payload)
                        .await?;
                    let now = self.read_dictionary().await?;
                    if now.is_some_and(|n| n.sealed == sealed) {
                        return Ok(());
                    }
                }
            }
            tracing::debug!("tag dictionary changed by another writer; merging and retrying");
        }
        Err(StorageError::Store(crate::store::StoreError::Backend {
            backend: "estate",
            collection: DICTIONARY_COLLECTION.to_string(),
            operation: "update tag dictionary",
            source: format!("another writer changed it {MAX_ATTEMPTS} times in a row").into(),
        }))
    }
}

fn dictionary_ctx() -> SealContext<'static> {
    SealContext {
        collection: DICTIONARY_COLLECTION,
        point_id: DICTIONARY_ID,
        field: DICTIONARY_FIELD,
        bound: &[],
        write: &[],
    }
}
