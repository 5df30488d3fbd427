"""The same scan on a Ray cluster with Ray Data: model-holding actors, GPUs requested when present.

Indexes are built once by the driver before the actors start; every actor opens the same
catalog and index folder (on a real cluster these must be on shared storage) and runs
``Scanner.scan`` on its batches, so results are identical to a single-process scan.

``actors`` (``scanner scan --engine ray --actors N``) sets how many model-holding actors run;
by default one per GPU, or one per two CPUs of the cluster. The assets are cut into batches of
at most ``batch_size``, and small enough that every actor gets several (a delivery of 40 files
on two actors is not one batch of 32 and one of 8); a detector gives the same result for an
item whatever batch it is in, so only timing depends on the cut.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from typing import Any, Iterator, Sequence

from scanner.config import Settings
from scanner.errors import ConfigError
from scanner.media.files import Candidate, display_path
from scanner.types import AssetResult


class _ScanActor:
    """Holds one ``Scanner`` (models loaded once per actor) and checks batches of paths."""

    def __init__(self, settings: Settings, caller: str, thumb_dir: str | None, reuse: dict[str, dict]):
        from scanner.api import Scanner

        self.scanner = Scanner(settings, caller=caller)
        self.thumb_dir = thumb_dir
        self.reuse = reuse

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        from pathlib import Path

        cands = [Candidate(p, prob or None) for p, prob in zip(batch["path"], batch["problem"])]
        results = self.scanner.scan(cands, thumb_dir=Path(self.thumb_dir) if self.thumb_dir else None,
                                    reuse=self.reuse)
        return {"order": list(batch["order"]), "record": [json.dumps(r.to_dict()) for r in results]}


def scan_with_ray(
    settings: Settings, candidates: Sequence[Candidate], caller: str, address: str | None = None,
    thumb_dir: str | None = None, reuse: dict[str, dict] | None = None, actors: int | None = None,
    batch_size: int | None = None,
) -> Iterator[AssetResult]:
    """Yield results in the order of ``candidates``, computed by ``actors`` Ray actors (default
    :func:`default_actors`). Starts a local Ray when none is running and ``address`` is None."""
    if actors is not None and (isinstance(actors, bool) or not isinstance(actors, int) or actors < 1):
        raise ConfigError(f"the Ray engine needs at least one actor (got actors={actors!r})")
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray engine needs Ray: pip install 'ray[data]'") from None
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    from ray.data import DataContext

    DataContext.get_current().execution_options.preserve_order = True
    gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
    n_actors = actors or default_actors(ray.cluster_resources())
    # Workers run in another directory: they get absolute paths, results keep the caller's paths.
    items = [{"path": os.path.abspath(c.path), "problem": c.problem or "", "order": i}
             for i, c in enumerate(candidates)]
    original = {display_path(item["path"]): c.display for item, c in zip(items, candidates)}
    to_abs = {v: k for k, v in original.items()}
    reuse = {to_abs.get(p, p): r for p, r in (reuse or {}).items()}
    size = batch_for(len(items), n_actors, batch_size or settings.batch_size)
    ds = ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // size))).map_batches(
        _ScanActor, fn_constructor_args=(settings.absolute(), caller, thumb_dir, reuse), batch_size=size,
        concurrency=n_actors, num_gpus=gpus, batch_format="default",
    )
    for row in ds.iter_rows():
        result = AssetResult.from_dict(json.loads(row["record"]))
        yield replace(result, path=original.get(result.path, result.path))


def default_actors(resources: dict[str, float]) -> int:
    """Actors when none are asked for: one per GPU, else one per two CPUs (at least one)."""
    if resources.get("GPU", 0) >= 1:
        return max(1, int(resources["GPU"]))
    return max(1, int(resources.get("CPU", 1)) // 2)


BATCHES_PER_ACTOR = 4  # batches each actor gets at least, when the delivery is small


def batch_for(n_items: int, n_actors: int, batch_size: int) -> int:
    """Items per Ray batch: at most ``batch_size``, and small enough that each of ``n_actors``
    gets about ``BATCHES_PER_ACTOR`` batches, so a small delivery still spreads over every actor.
    One actor keeps whole batches: cutting gains it nothing and shortens its decode-ahead."""
    if n_actors <= 1:
        return max(1, int(batch_size))
    share = -(-n_items // (max(1, n_actors) * BATCHES_PER_ACTOR))
    return max(1, min(int(batch_size), share))
