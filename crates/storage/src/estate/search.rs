//! Estate search: the query language's clauses as store filters, then hybrid ranking of the
//! free text (keyword and dense rankings fused, ordered by the attribute and class words
//! the query names).

use std::collections::{BTreeSet, HashMap};

use super::intent::{self, Check, Constraint, Verdict};
use super::query::{EstateQuery, Field, Pattern, TagPattern, Test};
use super::schema::{self, field, ESTATE};
use super::storage::{invalid, str_of, EstateStorage, ResourceFilter, ResourceHit, FACET_LIMIT};
use crate::error::Result;
use crate::fusion;
use crate::names::KEYWORDS_VECTOR;
use crate::search_mode::{effective_mode, SearchMode};
use crate::store::{Condition, FieldValue, Filter, PointId, QueryRequest, VectorData, VectorSelection};

impl EstateStorage {
    /// Search with the estate query language (`region:us-east-1 service:rds tag:env=prod -state:stopped`, free text ranked; `a,b` for OR, a trailing `*` for a prefix) plus `filter`: hybrid over the free
    /// text, filter-only when there is none.
    ///
    /// # Errors
    /// [`crate::StorageError::InvalidInput`] for a malformed query (naming the bad token); store,
    /// crypto and embedding errors.
    pub async fn search(&self, query: &str, filter: &ResourceFilter, limit: usize) -> Result<Vec<ResourceHit>> {
        self.search_in_mode(query, filter, limit, SearchMode::Hybrid).await
    }

    /// [`EstateStorage::search`] ranking the free text by keywords, by meaning or both
    /// (hybrid, the default; keyword when no embedding model is configured).
    ///
    /// # Errors
    /// As [`EstateStorage::search`]; [`crate::StorageError::InvalidInput`] for semantic search
    /// without an embedding model.
    pub async fn search_in_mode(
        &self,
        query: &str,
        filter: &ResourceFilter,
        limit: usize,
        mode: SearchMode,
    ) -> Result<Vec<ResourceHit>> {
        let mode = effective_mode(mode, self.dense.is_some())?;
        let parsed = EstateQuery::parse(query).map_err(|e| invalid("query", e.to_string()))?;
        let limit = limit.clamp(1, 10_000);
        let mut store_filter = self.base_filter(filter);
        for clause in &parsed.clauses {
            let Some(condition) = self.clause_condition(&clause.test).await? else {
                if clause.negated {
                    continue; // "not (nothing)" holds for all
                }
                return Ok(Vec::new());
            };
            if clause.negated {
                store_filter = store_filter.and_not(condition);
            } else {
                store_filter = store_filter.and(condition);
            }
        }
        if parsed.text.trim().is_empty() {
            return Ok(self
                .scroll_all(store_filter, limit)
                .await?
                .into_iter()
                .map(|resource| ResourceHit { resource, score: 0.0 })
                .collect());
        }
        self.ranked(&parsed.text, store_filter, limit, mode).await
    }

    /// Rank the free text within `filter`: reciprocal-rank fusion of the keyword and dense
    /// rankings; in hybrid mode, the attribute and class words the text names
    /// ([`intent::interpret`]) then order the candidates: none contradicted first, then more
    /// constraints satisfied, then the fused score. Resources satisfying every constraint are
    /// fetched by a second, filtered ranking, so they are candidates even when neither
    /// ranker put them near the top.
    async fn ranked(&self, text: &str, filter: Filter, limit: usize, mode: SearchMode) -> Result<Vec<ResourceHit>> {
        let depth = (limit * 3).max(30);
        let checks = match mode {
            SearchMode::Hybrid => self.resolve(&intent::interpret(text)),
            _ => Vec::new(),
        };
        let keyword = (mode != SearchMode::Semantic).then(|| self.keywords.query(text));
        let dense = match (&self.dense, mode) {
            (Some(space), SearchMode::Semantic | SearchMode::Hybrid) => Some((space.slot(), space.query(text).await?)),
            _ => None,
        };
        let mut scores: HashMap<PointId, f32> = HashMap::new();
        let asked = filter.clone();
        let mut filters = vec![filter.clone()];
        let strict: Vec<Condition> = checks.iter().filter_map(Check::condition).collect();
        if !strict.is_empty() {
            filters.push(strict.into_iter().fold(filter, Filter::and));
        }
        for filter in filters {
            let mut requests = Vec::new();
            if let Some(k) = &keyword {
                requests.push((KEYWORDS_VECTOR, k.clone()));
            }
            if let Some((slot, v)) = &dense {
                requests.push((*slot, VectorData::Dense(v.clone())));
            }
            for (using, vector) in requests {
                let hits = self
                    .store
                    .query(
                        ESTATE,
                        QueryRequest {
                            using: using.into(),
                            vector,
                            filter: Some(filter.clone()),
                            limit: depth,
                            with_payload: false,
                            exact: false,
                        },
                    )
                    .await?;
                fusion::add_ranking(&mut scores, hits.iter().map(|h| h.id));
            }
        }
        let mut ranked = fusion::best_first(scores);
        if checks.is_empty() {
            ranked.truncate(limit);
        }
        let ids: Vec<PointId> = ranked.iter().map(|(id, _)| *id).collect();
        let records: HashMap<PointId, crate::store::Record> = self
            .store
            .retrieve(ESTATE, ids, VectorSelection::None)
            .await?
            .into_iter()
            .map(|r| {
                // The rankings returned ids only: the records they name must fit the filter.
                crate::store::verify::check_admitted(ESTATE, &asked, r.id, &r.payload).map(|()| (r.id, r))
            })
            .collect::<Result<_, _>>()?;
        if !checks.is_empty() {
            let mut tiered = Vec::with_capacity(ranked.len());
            for (position, (id, score)) in ranked.into_iter().enumerate() {
                let Some(record) = records.get(&id) else { continue };
                let (satisfied, contradicted) = self.standing(record, &checks)?;
                tiered.push(((contradicted, std::cmp::Reverse(satisfied), position), (id, score)));
            }
            tiered.sort_by_key(|(key, _)| *key);
            ranked = tiered.into_iter().map(|(_, hit)| hit).take(limit).collect();
        }
        let mut out = Vec::with_capacity(ranked.len());
        for (id, score) in ranked {
            if let Some(r) = records.get(&id) {
                out.push(ResourceHit {
                    resource: schema::resource_from_record(r, &self.sealer)?,
                    score,
                });
            }
        }
        Ok(out)
    }

    /// The query's constraints as checks on stored points; an environment no resource is
    /// tagged with is dropped (nothing could satisfy it).
    fn resolve(&self, constraints: &[Constraint]) -> Vec<Check> {
        let keys = self.keys();
        constraints
            .iter()
            .filter_map(|c| match c {
                Constraint::Class(types) => Some(Check::Field {
                    field: field::RESOURCE_TYPE,
                    values: types.iter().map(|t| (*t).to_string()).collect(),
                    exclusive: false,
                }),
                Constraint::Region(code) => Some(Check::Field {
                    field: field::REGION,
                    values: vec![code.clone()],
                    exclusive: true,
                }),
                Constraint::State(states) => Some(Check::Field {
                    field: field::STATE,
                    values: states.iter().map(|s| (*s).to_string()).collect(),
                    exclusive: true,
                }),
                Constraint::Untagged => Some(Check::Untagged),
                Constraint::Public => Some(Check::Public),
                Constraint::Environment(env) => {
                    let dictionary = self.dictionary.lock().unwrap_or_else(|p| p.into_inner());
                    let (mut satisfy, mut contradict) = (Vec::new(), Vec::new());
                    for (key, values) in dictionary.iter() {
                        for value in values {
                            match intent::environment_of_value(value) {
                                Some(e) if e == *env => satisfy.push(keys.tag_token(key, value)),
                                Some(_) => contradict.push(keys.tag_token(key, value)),
                                None => {}
                            }
                        }
                    }
                    (!satisfy.is_empty()).then_some(Check::Tags { satisfy, contradict })
                }
            })
            .collect()
    }

    /// How many checks a stored point satisfies, and whether it contradicts any.
    fn standing(&self, record: &crate::store::Record, checks: &[Check]) -> Result<(usize, bool)> {
        let (mut satisfied, mut contradicted) = (0, false);
        for check in checks {
            let verdict = match check {
                Check::Public => intent::public_verdict(schema::metadata_of(record, &self.sealer)?.as_ref()),
                other => other.verdict(&record.payload),
            };
            match verdict {
                Verdict::Satisfies => satisfied += 1,
                Verdict::Contradicts => contradicted = true,
                Verdict::Neutral => {}
            }
        }
        Ok((satisfied, contradicted))
    }

    /// The store condition of one query clause; `None` when nothing can match it.
    async fn clause_condition(&self, test: &Test) -> Result<Option<Condition>> {
        match test {
            Test::Field(field, patterns) => {
                let key = match field {
                    Field::Region => field::REGION,
                    Field::Service => field::SERVICE,
                    Field::ResourceType => field::RESOURCE_TYPE,
                    Field::Account => field::ACCOUNT_ID,
                    Field::State => field::STATE,
                };
                let mut values: BTreeSet<String> = BTreeSet::new();
                let mut known: Option<Vec<String>> = None;
                for p in patterns {
                    match p {
                        Pattern::Exact(v) => {
                            values.insert(v.clone());
                        }
                        Pattern::Prefix(prefix) => {
                            if known.is_none() {
                                let facets = self.store.facet(ESTATE, key, None, FACET_LIMIT).await?;
                                known = Some(facets.iter().filter_map(|(v, _)| str_of(v).map(String::from)).collect());
                            }
                            values.extend(
                                known
                                    .iter()
                                    .flatten()
                                    .filter(|v| v.starts_with(prefix.as_str()))
                                    .cloned(),
                            );
                        }
                    }
                }
                Ok((!values.is_empty())
                    .then(|| Condition::Any(key.into(), values.into_iter().map(FieldValue::from).collect())))
            }
            Test::Tag(patterns) => {
                let mut any: Vec<Condition> = Vec::new();
                for p in patterns {
                    match p {
                        TagPattern::None => any.push(Condition::IsEmpty(field::TAG_KEYS.into())),
                        TagPattern::Key(k) => any.push(Condition::Eq(field::TAG_KEYS.into(), k.clone().into())),
                        TagPattern::KeyValue(k, Pattern::Exact(v)) => {
                            any.push(Condition::Eq(
                                field::TAG_TOKENS.into(),
                                self.keys().tag_token(k, v).into(),
                            ));
                        }
                        TagPattern::KeyValue(k, Pattern::Prefix(prefix)) => {
                            let tokens: Vec<FieldValue> = self
                                .dictionary
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get(k)
                                .into_iter()
                                .flatten()
                                .filter(|v| v.starts_with(prefix.as_str()))
                                .map(|v| self.keys().tag_token(k, v).into())
                                .collect();
                            if !tokens.is_empty() {
                                any.push(Condition::Any(field::TAG_TOKENS.into(), tokens));
                            }
                        }
                    }
                }
                Ok(match any.len() {
                    0 => None,
                    1 => any.pop(),
                    _ => Some(Condition::Filter(Box::new(Filter {
                        should: any,
                        ..Filter::default()
                    }))),
                })
            }
        }
    }
}
