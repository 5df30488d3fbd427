"""benchmarks/common: threshold at an FPR target, operating points, seeded group splits, tables,
manifest reading and the calibration writer (no shared data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from benchmarks.common import calibrate, cli, data, memory, split, stats, table


# ---------------------------------------------------------------- threshold at FPR


def test_count_threshold_is_one_above_the_first_negative_that_must_not_pass():
    neg = np.array([3, 9, 5, 7, 1, 2, 8, 4, 6, 0] * 10, float)  # 100 negatives, ten of each count 0-9
    # 1 % of 100: one negative may pass; the two highest are 9s, so the second 9 is the pivot
    assert stats.threshold_at_fpr(neg, 0.01) == 10.0
    # 10 %: ten may pass (all the 9s); the first 8 must not
    assert stats.threshold_at_fpr(neg, 0.10) == 9.0
    assert stats.passes(neg, 9.0).sum() == 10
    # 15 %: fifteen may pass, but ties at 8 mean that only the ten 9s can: a threshold never splits a tie
    thr = stats.threshold_at_fpr(neg, 0.15)
    assert thr == 9.0 and stats.passes(neg, thr).sum() <= 15


def test_lower_is_closer_threshold_is_one_below_the_pivot():
    dist = np.array([40, 12, 90, 31, 12, 55, 70, 18, 66, 80], float)
    # 10 % of 10: one may pass (12); the second 12 is the pivot, so nothing at 12 passes: <= 11
    assert stats.threshold_at_fpr(dist, 0.10, lower_is_closer=True) == 11.0
    # 20 %: two may pass (both 12s); pivot 18 -> <= 17
    assert stats.threshold_at_fpr(dist, 0.20, lower_is_closer=True) == 17.0
    assert stats.passes(dist, 17.0, lower_is_closer=True).sum() == 2


def test_similarity_threshold_is_the_next_4_decimal_value_above_the_pivot():
    neg = np.array([0.91234, 0.5, 0.3, 0.30005, 0.1, 0.7, 0.8, 0.2, 0.6, 0.4])
    assert stats.threshold_at_fpr(neg, 0.0, step=1e-4) == 0.9124
    # a pivot exactly on the grid must not pass: the next grid value
    assert stats.threshold_at_fpr(np.array([0.3, 0.1]), 0.0, step=1e-4) == 0.3001
    assert stats.threshold_at_fpr(np.array([-0.25]), 0.0, step=1e-4) == -0.2499


def test_no_constraint_gives_the_floor_or_the_loosest_value():
    neg = np.array([5.0, 6.0])
    assert stats.threshold_at_fpr(neg, 0.5, floor=3.0) == 6.0  # one may pass (6): pivot 5
    assert stats.threshold_at_fpr(neg, 1.0, floor=3.0) == 3.0  # all may pass
    assert stats.threshold_at_fpr(np.array([1.0, 2.0]), 0.0, floor=8.0) == 8.0  # never looser than the floor
    assert stats.threshold_at_fpr(neg, 1.0) == -np.inf
    assert stats.threshold_at_fpr(neg, 1.0, lower_is_closer=True) == np.inf
    assert stats.threshold_at_fpr(neg, 1.0, lower_is_closer=True, unconstrained=256) == 256
    assert stats.threshold_at_fpr(np.array([-np.inf, -np.inf]), 0.0, unconstrained=0) == 0  # never matched
    assert stats.threshold_at_fpr(np.array([]), 0.01, floor=2.0) == 2.0


def test_pivot_without_a_grid_and_the_allowed_count():
    neg = np.arange(1000, dtype=float)
    assert stats.allowed_negatives(0.01, 300) == 3
    assert stats.allowed_negatives(0.001, 999) == 0
    assert stats.fpr_pivot(neg, 0.01) == 989.0  # ten may pass: 999..990
    assert stats.threshold_at_fpr(neg, 0.01, step=None) == 989.0
    assert stats.fpr_pivot(neg, 1.0) is None


@pytest.mark.parametrize("lower", [False, True])
def test_measured_fpr_never_exceeds_the_target(lower):
    rng = np.random.default_rng(3)
    neg = rng.integers(0, 40, 997).astype(float)
    for fpr in (0.001, 0.01, 0.05, 0.3):
        thr = stats.threshold_at_fpr(neg, fpr, lower_is_closer=lower)
        assert stats.passes(neg, thr, lower).sum() <= stats.allowed_negatives(fpr, neg.size)
        # and one step looser lets too many pass (the threshold is the loosest such)
        looser = thr + 1 if lower else thr - 1
        assert stats.passes(neg, looser, lower).sum() > stats.allowed_negatives(fpr, neg.size)


def test_operating_point_counts_only_right_positives():
    pos = np.array([10, 12, 3, 20], float)
    right = np.array([True, False, True, True])
    neg = np.array([0, 1, 2, 9] + [0] * 96, float)  # one may pass at 1 %: pivot 2 -> >= 3
    op = stats.operating_point(pos, neg, 0.01, right=right)
    assert op == stats.Operating(0.01, 3.0, 0.75, 0.01)
    assert stats.recall_at(pos, 11.0) == 0.5
    assert stats.recall_at(pos, 11.0, right) == 0.25
    assert stats.rate(np.array([], bool)) == 0.0


def test_pct_and_percentile():
    assert stats.pct(0.1234) == "12.3%"
    assert stats.pct(0.5, digits=0) == "50%"
    assert stats.pct(0.05, width=6) == "  5.0%"
    assert stats.pct(float("nan"), width=5) == "  n/a"
    assert stats.percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50) == 3.0
    assert stats.percentile([1.0, 2.0], 100) == 2.0
    assert np.isnan(stats.percentile([], 50))


# ---------------------------------------------------------------- splits


def _items(n_groups: int = 12):
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 4, n_groups)
    return [(g, k) for g in range(n_groups) for k in range(int(sizes[g]))]


def test_split_half_keeps_groups_whole_and_is_deterministic():
    items = _items()
    reg, held = split.split_half(items, lambda x: x[0], seed=5)
    assert sorted(reg + held) == sorted(items)
    assert not {g for g, _ in reg} & {g for g, _ in held}
    assert len(reg) <= len(items) // 2
    assert split.split_half(items, lambda x: x[0], seed=5) == (reg, held)
    others = {tuple(split.split_half(items, lambda x: x[0], seed=s)[0]) for s in range(6)}
    assert len(others) > 1  # the seed matters


def test_split_sizes_fills_bins_with_whole_groups_and_carries_the_generator():
    groups = [g for g, _ in _items()]
    bins = split.split_sizes(groups, [5, 5], np.random.default_rng(1))
    assert len(bins) == 3 and sorted(i for b in bins for i in b) == list(range(len(groups)))
    assert all(len(b) <= 5 for b in bins[:2])
    sides = [{groups[i] for i in b} for b in bins]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    rng_a, rng_b = np.random.default_rng(1), np.random.default_rng(1)
    assert split.split_sizes(groups, [5, 5], rng_a) == split.split_sizes(groups, [5, 5], rng_b)
    assert split.split_sizes(groups, [5, 5], rng_a) == split.split_sizes(groups, [5, 5], rng_b)


def test_fill_groups_lets_a_later_small_group_take_the_room_a_large_one_left():
    assert split.fill_groups([[0, 1, 2], [3, 4], [5]], [3, 1]) == [[0, 1, 2], [5], [3, 4]]


def test_hold_out_is_a_seeded_permutation():
    held, reg = split.hold_out(10, 3, seed=7)
    assert len(held) == 3 and sorted(held + reg) == list(range(10))
    assert held + reg == np.random.default_rng(7).permutation(10).tolist()


# ---------------------------------------------------------------- data, tables, memory, cli


def test_manifest_rows_and_label_groups(tmp_path):
    (tmp_path / "MANIFEST.csv").write_text(
        "path,kind,label,source,license\nvoices/a.flac,voice,s1,x,CC0\nvoices/b.flac,voice,s2,x,CC0\n"
        "voices/c.flac,voice,s1,x,CC0\nimages/w.jpg,image-work,w,y,CC-BY\n")
    rows = data.read_manifest(tmp_path, kinds=["voice"])
    assert [r.path for r in rows] == [tmp_path / "voices" / n for n in ("a.flac", "b.flac", "c.flac")]
    assert data.label_groups(rows) == [0, 1, 0]
    assert len(data.read_manifest(tmp_path)) == 4
    with pytest.raises(SystemExit, match="MANIFEST.csv"):
        data.read_manifest(tmp_path / "nowhere")


def test_media_files_and_require_dir(tmp_path):
    for name in ("b.PNG", "a.jpg", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in data.media_files(tmp_path, data.IMAGE_SUFFIXES)] == ["a.jpg", "b.PNG"]
    assert data.require_dir(tmp_path, "--data") == tmp_path
    with pytest.raises(SystemExit, match=r"pass --data DIR with scenes/"):
        data.require_dir(tmp_path, "--data", "scenes")


def test_tables():
    assert table.format_table(["name", "n"], [["alpha", 3], ["b", 120]]).splitlines() == [
        "  name     n", "  alpha    3", "  b      120"]
    assert table.markdown_table(["a", "b|c"], [[1, 2]]) == "| a | b\\|c |\n| --- | --- |\n| 1 | 2 |"


def test_memory_measures():
    assert memory.peak_rss_mib() > 1
    assert memory.peak_rss_since_reset_mib() > 1
    with memory.traced_peak() as p:
        block = bytearray(8 * 2**20)
    del block
    assert 7.5 < p.mib < 64


def test_cli_flags():
    p = cli.parser("First paragraph.\n\nMore.")
    cli.add_seed(p, 17)
    cli.add_quick(p)
    cli.add_data(p, "--music", sub="music")
    cli.add_write_calibration(p)
    a = p.parse_args(["--quick", "--write-calibration"])
    assert p.description == "First paragraph."
    assert a.seed == 17 and a.quick and a.music == data.SHARED_DATA / "music"
    assert a.write_calibration is not None and p.parse_args([]).write_calibration is None
    assert cli.names(" a, b,,") == ("a", "b")


@pytest.mark.parametrize("bad", ["1920", "1920x", "axb", "1920x1080x3", "8x8"])
def test_frame_size_flag(bad, capsys):
    p = cli.parser(None)
    p.add_argument("--frame", type=cli.frame_size, default="1280x720")
    assert p.parse_args([]).frame == (1280, 720) and p.parse_args(["--frame", "1920X1080"]).frame == (1920, 1080)
    with pytest.raises(SystemExit):
        p.parse_args(["--frame", bad])
    assert "--frame" in capsys.readouterr().err


# ---------------------------------------------------------------- calibration writer


def test_levels_entry_and_write(tmp_path, capsys):
    entry = calibrate.levels_entry("count", 12, 9, {"negatives": 100})
    assert entry["final"] == {"block": 12, "review": 9} and entry["ideation"] == {"block": 12, "review": 12}
    assert calibrate.levels_entry("count", 12, 9, {}, ideation_review=9)["ideation"]["review"] == 9
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"detectors": {"image.pdq": {"pdq": {"keep": True}}}}))
    version = calibrate.write_calibration(path, "audio.melody", "m1", entry, "melody", "test run")
    saved = json.loads(path.read_text())
    assert saved["detectors"]["image.pdq"]["pdq"] == {"keep": True}
    assert saved["detectors"]["audio.melody"]["m1"] == entry and saved["version"] == version
    assert "-melody-" in version and version in capsys.readouterr().out
