//! Reciprocal-rank fusion, shared by chat and estate search: the hit at rank `r` (from 0) of a
//! ranking adds `weight / (K + r + 1)` to its score, with K = 60 (Cormack et al.). Each domain
//! chooses its own weights on its own evaluation set: chat weighs keyword hits by the share of
//! the query they cover; the estate fuses plainly and orders by the query's words afterwards.

use std::collections::HashMap;

use crate::store::PointId;

/// The fusion constant.
pub(crate) const RRF_K: f32 = 60.0;

/// What the hit at `rank` of a ranking adds, at `weight`.
pub(crate) fn share(rank: usize, weight: f32) -> f32 {
    weight / (RRF_K + rank as f32 + 1.0)
}

/// Add one ranking (best first) to `scores`, every hit at weight 1.
pub(crate) fn add_ranking(scores: &mut HashMap<PointId, f32>, ranking: impl IntoIterator<Item = PointId>) {
    for (rank, id) in ranking.into_iter().enumerate() {
        *scores.entry(id).or_default() += share(rank, 1.0);
    }
}

/// Fused scores, best first; equal scores in id order (stable across runs of one store).
pub(crate) fn best_first(scores: HashMap<PointId, f32>) -> Vec<(PointId, f32)> {
    let mut ranked: Vec<(PointId, f32)> = scores.into_iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agreement_beats_a_single_first_place() {
        let id = |n: u128| uuid::Uuid::from_u128(n);
        let mut scores = HashMap::new();
        add_ranking(&mut scores, [id(1), id(2), id(3)]);
        add_ranking(&mut scores, [id(3), id(4)]);
        let ranked = best_first(scores);
        assert_eq!(ranked[0].0, id(3));
        assert_eq!(ranked.len(), 4);
        assert!((ranked[0].1 - (share(2, 1.0) + share(0, 1.0))).abs() < 1e-9);
        assert_eq!(share(0, 0.5), 0.5 / 61.0);
    }
}
