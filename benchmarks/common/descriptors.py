"""Descriptor post-processing for copy-detection embeddings, as SSCD's authors recommend when sample
images of the target distribution exist (Pizzi et al., CVPR 2022, sec. 4 and appendix):

* centring + whitening fitted on a background set, then L2 renormalisation;
* score normalisation: a pair's cosine minus ``beta`` times the query's similarity to its ``k``-th
  nearest neighbour in a distractor (background) set, so that queries that resemble many things
  (flat layouts, common textures) need a closer match to pass.

Pure numpy; the benchmark measures whether they help on its data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def l2n(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


@dataclass(frozen=True)
class Whitening:
    """x -> l2n((x - mean) @ proj); ``proj`` is identity for centring only."""

    mean: np.ndarray
    proj: np.ndarray

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Post-processed, renormalised rows."""
        return l2n((np.asarray(x, dtype=np.float64) - self.mean) @ self.proj).astype(np.float32)


def fit_whitening(background: np.ndarray, shrink: float | None = 0.5) -> Whitening:
    """Centring (``shrink=None``) or ZCA whitening with covariance shrinkage towards its mean eigenvalue
    (``(1 - shrink) C + shrink * mean_eig * I``): a background of a few hundred images cannot estimate a
    full 512-d covariance, and shrinkage keeps the weak directions from being blown up."""
    x = np.asarray(background, dtype=np.float64)
    mean = x.mean(0)
    if shrink is None:
        return Whitening(mean, np.eye(x.shape[1]))
    c = np.cov(x - mean, rowvar=False)
    c = (1 - shrink) * c + shrink * (np.trace(c) / c.shape[0]) * np.eye(c.shape[0])
    vals, vecs = np.linalg.eigh(c)
    return Whitening(mean, vecs @ np.diag(1.0 / np.sqrt(np.maximum(vals, 1e-12))) @ vecs.T)


def kth_neighbour_similarity(queries: np.ndarray, distractors: np.ndarray, k: int) -> np.ndarray:
    """Each query's cosine to its ``k``-th most similar distractor (1-based)."""
    sims = np.asarray(queries, dtype=np.float64) @ np.asarray(distractors, dtype=np.float64).T
    k = min(k, sims.shape[1])
    return -np.partition(-sims, k - 1, axis=1)[:, k - 1]
