//! A secret orthogonal rotation of dense vectors, derived from the vector-protection subkey.
//!
//! Published attacks can invert sentence embeddings back into text. Storing `Q·v` instead of
//! `v`, with `Q` a random orthogonal matrix only the key holder can rebuild, keeps cosine
//! similarity exact (`(Qa)·(Qb) = a·b`) while an attacker's inversion model, trained on the
//! public embedding space, sees vectors in an unknown basis. This is obfuscation, not
//! encryption: someone with many known (text, stored vector) pairs can estimate `Q`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// An orthogonal `dim × dim` matrix, row-major.
#[derive(Clone)]
pub(crate) struct VectorRotation {
    dim: usize,
    matrix: Vec<f32>,
}

impl std::fmt::Debug for VectorRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VectorRotation")
            .field("dim", &self.dim)
            .finish_non_exhaustive()
    }
}

impl VectorRotation {
    /// The rotation for `dim`-dimensional vectors under `key` (deterministic).
    pub(crate) fn new(key: &[u8; 32], dim: usize) -> Self {
        let mut seed = *key;
        // Different dimensions get unrelated matrices.
        for (i, b) in (dim as u64).to_le_bytes().iter().enumerate() {
            seed[i] ^= b;
        }
        let mut rng = ChaCha20Rng::from_seed(seed);
        // Gaussian rows, then modified Gram-Schmidt in f64: a Haar-random orthogonal matrix.
        let mut rows: Vec<Vec<f64>> = (0..dim)
            .map(|_| (0..dim).map(|_| gaussian(&mut rng)).collect())
            .collect();
        for i in 0..dim {
            for j in 0..i {
                let (done, rest) = rows.split_at_mut(i);
                let dot: f64 = rest[0].iter().zip(&done[j]).map(|(a, b)| a * b).sum();
                rest[0].iter_mut().zip(&done[j]).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = rows[i].iter().map(|x| x * x).sum::<f64>().sqrt();
            rows[i].iter_mut().for_each(|x| *x /= norm);
        }
        VectorRotation {
            dim,
            matrix: rows.into_iter().flatten().map(|x| x as f32).collect(),
        }
    }

    /// `Q·v`. `v` must have [`Self::dim`] values (checked when the embedder is opened).
    pub(crate) fn apply(&self, v: &[f32]) -> Vec<f32> {
        debug_assert_eq!(v.len(), self.dim);
        self.matrix
            .chunks_exact(self.dim)
            .map(|row| row.iter().zip(v).map(|(a, b)| a * b).sum())
            .collect()
    }
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut ChaCha20Rng) -> f64 {
    let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn rotation_keeps_dot_products_and_moves_vectors() {
        let r = VectorRotation::new(&[5; 32], 64);
        let mut rng = ChaCha20Rng::from_seed([1; 32]);
        let vs: Vec<Vec<f32>> = (0..10)
            .map(|_| (0..64).map(|_| gaussian(&mut rng) as f32).collect())
            .collect();
        for a in &vs {
            let ra = r.apply(a);
            assert!((dot(&ra, &ra) - dot(a, a)).abs() < 1e-3 * dot(a, a));
            assert!(dot(&ra, a) / dot(a, a) < 0.9, "rotated vector is not the original");
            for b in &vs {
                assert!((dot(&ra, &r.apply(b)) - dot(a, b)).abs() < 1e-3 * dot(a, a).max(1.0));
            }
        }
    }

    #[test]
    fn different_keys_give_different_rotations() {
        let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
        assert_ne!(
            VectorRotation::new(&[1; 32], 16).apply(&v),
            VectorRotation::new(&[2; 32], 16).apply(&v)
        );
        assert_eq!(
            VectorRotation::new(&[1; 32], 16).apply(&v),
            VectorRotation::new(&[1; 32], 16).apply(&v)
        );
    }
}
