"""Seeded splits that keep a group (one work and its near-duplicates, one speaker) on one side.

Every benchmark registers part of its data and holds the rest out as unregistered negatives. Items
of one group must never straddle the split, or a held-out "negative" would be a copy of a
registered work. Orders come from ``numpy.random.default_rng(seed)``, so a seed fixes the split.
"""

from __future__ import annotations

from typing import Callable, Hashable, Sequence, TypeVar

import numpy as np

T = TypeVar("T")

# Two works whose images verify this many ``image.local`` inliers on each other share painted content
# (a reused body or prop): one group, never a negative pair (partial_copy.py, image_copy.py --local).
SAME_CONTENT_INLIERS = 25


def group_members(groups: Sequence[Hashable]) -> dict[Hashable, list[int]]:
    """Item indices per group, groups in first-appearance order, members in item order."""
    members: dict[Hashable, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    return members


def fill_groups(order: Sequence[Sequence[int]], sizes: Sequence[int]) -> list[list[int]]:
    """Whole groups, in ``order``, into ``len(sizes)`` bins of at most ``sizes[k]`` items and a last bin
    for the rest: each group goes to the first bin it still fits in (a large group may skip a bin
    that a later, smaller group fills). Returns ``len(sizes) + 1`` lists of item indices."""
    bins: list[list[int]] = [[] for _ in range(len(sizes) + 1)]
    for members in order:
        k = next((k for k, cap in enumerate(sizes) if len(bins[k]) + len(members) <= cap), len(sizes))
        bins[k].extend(members)
    return bins


def split_half(items: Sequence[T], group: Callable[[T], Hashable], seed: int) -> tuple[list[T], list[T]]:
    """(registered, held out): groups shuffled by ``seed`` fill the registered side up to half the items;
    every group that no longer fits is held out."""
    order = list(group_members([group(x) for x in items]).values())
    np.random.default_rng(seed).shuffle(order)
    reg, held = fill_groups(order, [len(items) // 2])
    return [items[i] for i in reg], [items[i] for i in held]


def split_sizes(groups: Sequence[int], sizes: Sequence[int], rng: np.random.Generator) -> list[list[int]]:
    """Item indices in ``len(sizes)`` bins of at most ``sizes[k]`` items (and the rest), whole groups in
    an order drawn from ``rng`` (a permutation of the sorted group ids, so ``rng``'s state carries on
    from split to split when a benchmark splits several kinds with one generator)."""
    members = group_members(groups)
    order = [members[g] for g in rng.permutation(sorted(members))]
    return fill_groups(order, sizes)


def hold_out(n: int, held: int, seed: int) -> tuple[list[int], list[int]]:
    """(held out, registered) indices of ``n`` ungrouped items: the first ``held`` of a seeded
    permutation are held out; both lists in permutation order."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    return order[:held], order[held:]
