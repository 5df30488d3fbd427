"""Static HTML report: summary counts, then every flagged asset beside the reference it matches.

Thumbnails live next to the page in ``thumbs/`` (asset thumbnails are written by the scan,
reference thumbnails here from the catalog), so the folder can be zipped and sent as is.

Records may come from files anyone with write access to a report folder could edit (shards,
resumed runs), so nothing from a record reaches the page unchecked: text is HTML-escaped,
numbers that go into SVG or file names are parsed as numbers first and dropped when they are not.
"""

from __future__ import annotations

import html
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from scanner.fsutil import atomic_write_bytes

COLOURS = {"block": "#c62828", "review": "#ef6c00", "pass": "#2e7d32", "error": "#6a1b9a", "cleared": "#1565c0",
           "consented": "#1565c0"}
ORDER = {"block": 0, "error": 1, "review": 2, "pass": 3}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;background:#fafafa}
h1{margin-bottom:.2rem} .meta{color:#666;font-size:.9rem;margin-bottom:1rem}
.counts span{display:inline-block;padding:.4rem .8rem;margin-right:.5rem;border-radius:4px;color:#fff;font-weight:600}
.asset{background:#fff;border:1px solid #ddd;border-left:8px solid #999;margin:1rem 0;padding:1rem;border-radius:4px}
.asset h2{font-size:1rem;margin:0 0 .5rem 0;word-break:break-all}
.badge{color:#fff;padding:.1rem .5rem;border-radius:3px;font-size:.8rem;text-transform:uppercase;margin-right:.5rem}
.pair{display:flex;gap:1rem;align-items:flex-start;margin:.6rem 0;flex-wrap:wrap}
.pair figure{margin:0;text-align:center;font-size:.8rem;color:#555}
.pair img{max-width:256px;max-height:256px;border:1px solid #ccc;background:#eee}
table{border-collapse:collapse;font-size:.85rem} td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}
.note{color:#666;font-size:.85rem} .err{color:#6a1b9a;font-weight:600}
"""


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any) -> float | None:
    """``x`` as a finite number, or None (strings, booleans, NaN and anything else are not coordinates)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    value = float(x)
    return value if math.isfinite(value) else None


def _nums(values: Any, n: int) -> list[float] | None:
    """Exactly ``n`` finite numbers from a list, or None."""
    if not isinstance(values, (list, tuple)) or len(values) != n:
        return None
    out = [_num(v) for v in values]
    return None if any(v is None for v in out) else out  # type: ignore[return-value]


def _c(x: float) -> str:
    """A number as SVG attribute text."""
    return f"{x:.10g}"


def _int(x: Any) -> int | None:
    """``x`` as a whole number (for ids and frame numbers used in file names), or None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, str) and x.isascii() and x.isdigit():
        return int(x)
    return None


def _sha(r: Mapping[str, Any]) -> str:
    """The record's sha256 when it is one (it names thumbnail files), else empty."""
    sha = r.get("sha256")
    return sha if isinstance(sha, str) and _SHA256.fullmatch(sha) else ""


def _badge(level: str) -> str:
    return f'<span class="badge" style="background:{COLOURS.get(level, "#999")}">{_e(level)}</span>'


def write_html(
    records: Sequence[Mapping[str, Any]], out: Path, ref_thumbnail: Callable[[Mapping[str, Any]], bytes | None],
    title: str = "Scan report", meta: Mapping[str, str] | None = None,
) -> Path:
    """Write ``out`` (an .html file) for JSONL-style ``records``; returns its path."""
    out = Path(out)
    thumbs = out.parent / "thumbs"
    counts = Counter(str(r.get("verdict")) for r in records)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{_e(title)}</title>",
             f"<style>{CSS}</style></head><body><h1>{_e(title)}</h1>"]
    if meta:
        parts.append('<div class="meta">' + " · ".join(f"{_e(k)}: {_e(v)}" for k, v in meta.items()) + "</div>")
    parts.append('<div class="counts">' + "".join(
        f'<span style="background:{COLOURS[v]}">{v}: {counts.get(v, 0)}</span>' for v in ("block", "review", "error", "pass")
    ) + f" <span style='background:#555'>total: {len(records)}</span></div>")
    flagged = sorted((r for r in records if r.get("verdict") != "pass"),
                     key=lambda r: (ORDER.get(str(r.get("verdict")), 9), str(r.get("path"))))
    written: set[str] = set()
    for r in flagged:
        parts.append(_asset_html(r, thumbs, ref_thumbnail, written))
    passed = [r for r in records if r.get("verdict") == "pass"]
    if passed:
        parts.append(f"<h3>Passed ({len(passed)})</h3><table><tr><th>asset</th><th>sha256</th><th>notes</th></tr>")
        parts.extend(f"<tr><td>{_e(r.get('path'))}</td><td><code>{_e(str(r.get('sha256') or '')[:16])}</code></td>"
                     f"<td class='note'>{_e(_join(r.get('notes')))}</td></tr>" for r in passed)
        parts.append("</table>")
    parts.append("</body></html>")
    atomic_write_bytes(out, "\n".join(parts).encode("utf-8"), shared=True)
    return out


def _join(notes: Any) -> str:
    if isinstance(notes, (list, tuple)):
        return "; ".join(str(n) for n in notes)
    return str(notes) if notes else ""


def _ref_key(f: Mapping[str, Any], extra: Mapping[str, Any]) -> str | None:
    """File-name key of a finding's reference thumbnail; None when the ids are not whole numbers
    (a key from a record must never become a path outside ``thumbs/``)."""
    ref_id = _int(f.get("reference_id"))
    if ref_id is None:
        return None
    if f.get("reference_kind") == "talent":
        sample = extra.get("sample_id")
        sample_id = _int(sample) if sample is not None else None
        return None if sample is not None and sample_id is None else f"talent-{ref_id}-{'x' if sample is None else sample_id}"
    return f"work-{ref_id}"


def _overlay(img: str, caption: str, size: Any, shapes: list[str]) -> str:
    """A thumbnail with an SVG overlay in the image's own pixel coordinates (boxes, polygons)."""
    if not img:
        return ""
    svg = ""
    if size and shapes:
        w, h = size
        svg = (f'<svg viewBox="0 0 {_c(w)} {_c(h)}" preserveAspectRatio="none" '
               f'style="position:absolute;left:0;top:0;width:100%;height:100%">{"".join(shapes)}</svg>')
    return (f'<figure><div style="position:relative;display:inline-block;line-height:0">'
            f'<img src="{_e(img)}" alt="{_e(caption)}">{svg}</div><figcaption>{_e(caption)}</figcaption></figure>')


def _frame(extra: Mapping[str, Any], which: str) -> list[float] | None:
    """Overlay coordinate frame: pixel size for images, [duration, 1] for waveform strips."""
    if extra.get(f"{which}_size"):
        size = _nums(extra[f"{which}_size"], 2)
        return size if size and size[0] > 0 and size[1] > 0 else None
    duration = _num(extra.get(f"{which}_duration"))
    return [duration, 1.0] if duration and duration > 0 else None


def _shapes(extra: Mapping[str, Any], which: str) -> list[str]:
    """SVG shapes for a finding's evidence: a face box, or matched-region polygons."""
    style = 'fill="none" stroke="#ffeb3b" stroke-width="1%" vector-effect="non-scaling-stroke"'
    out = []
    box = _nums(extra.get("box"), 4) if which == "asset" else None
    if box:
        x0, y0, x1, y1 = box
        out.append(f'<rect x="{_c(x0)}" y="{_c(y0)}" width="{_c(x1 - x0)}" height="{_c(y1 - y0)}" {style} '
                   'style="stroke-width:3"/>')
    span = (extra.get(f"{which}_start"), extra.get(f"{which}_end"))
    if which == "asset" and span[0] is None:
        span = (extra.get("start"), extra.get("end"))  # voice segments
    ab = _nums(list(span), 2)
    if ab and extra.get(f"{which}_duration"):
        a, b = ab
        out.append(f'<rect x="{_c(a)}" y="0" width="{_c(max(b - a, 0.01))}" height="1" fill="#ffeb3b" '
                   'fill-opacity="0.45"/>')
    poly = extra.get(f"{which}_polygon")
    points = [_nums(p, 2) for p in poly] if isinstance(poly, (list, tuple)) else []
    if points and all(points):
        pts = " ".join(f"{_c(x)},{_c(y)}" for x, y in points)  # type: ignore[misc]
        out.append(f'<polygon points="{pts}" {style} style="stroke-width:3"/>')
    return out


def _asset_html(r: Mapping[str, Any], thumbs: Path, ref_thumbnail: Callable[[Mapping[str, Any]], bytes | None],
                written: set[str]) -> str:
    verdict = str(r.get("verdict"))
    head = (f'<div class="asset" style="border-left-color:{COLOURS.get(verdict, "#999")}">'
            f"<h2>{_badge(verdict)}{_e(r.get('path'))}</h2>")
    if verdict == "error":
        return head + f'<div class="err">could not be checked: {_e(r.get("error"))}</div></div>'
    body = [head]
    sha = _sha(r)
    asset_img = f"thumbs/{sha}.jpg" if sha and (thumbs / f"{sha}.jpg").exists() else ""
    findings = r.get("findings")
    for f in findings if isinstance(findings, list) else []:
        if not isinstance(f, Mapping):
            continue
        extra = f.get("extra") if isinstance(f.get("extra"), Mapping) else {}
        ref_id, key = f.get("reference_id"), _ref_key(f, extra)
        if key is not None and key not in written:
            data = ref_thumbnail(f)
            if data:
                atomic_write_bytes(thumbs / f"ref-{key}.jpg", data, shared=True)
            written.add(key)
        ref_img = f"thumbs/ref-{key}.jpg" if key is not None and (thumbs / f"ref-{key}.jpg").exists() else ""
        closer = "≤" if f.get("metric") == "hamming" else "≥"
        kind = "talent" if f.get("reference_kind") == "talent" else "reference"
        frame = _int(extra.get("frame"))
        frame_img = f"thumbs/{sha}-f{frame}.jpg" if sha and frame is not None else ""
        shown = frame_img if frame_img and (thumbs / frame_img[len("thumbs/"):]).exists() else asset_img
        body.append(
            '<div class="pair">'
            + _overlay(shown, f"asset @ {extra['timecode']}" if "timecode" in extra else "asset", _frame(extra, "asset"),
                       _shapes(extra, "asset"))
            + _overlay(ref_img, f"{kind} #{ref_id}", _frame(extra, "ref"), _shapes(extra, "ref"))
            + "<table>"
            + f"<tr><th>finding</th><td>{_badge(str(f.get('level')))}</td></tr>"
            + f"<tr><th>{kind}</th><td>#{_e(ref_id)} {_e(f.get('reference_title'))}</td></tr>"
            + f"<tr><th>rights</th><td>{_e(f.get('rights_holder'))} ({_e(f.get('clearance'))})</td></tr>"
            + _evidence_rows(extra)
            + f"<tr><th>detector</th><td>{_e(f.get('detector'))} — {_e(f.get('model'))}</td></tr>"
            + f"<tr><th>score</th><td>{_e(f.get('score'))} ({_e(f.get('metric'))}; block {closer} "
              f"{_e(f.get('threshold_block'))}, review {closer} {_e(f.get('threshold_review'))})</td></tr>"
            + (f"<tr><th>note</th><td>{_e(f['note'])}</td></tr>" if f.get("note") else "")
            + (f"<tr><th>consent</th><td>record #{_e(f['consent_id'])}</td></tr>" if f.get("consent_id") else "")
            + "</table></div>"
        )
    models = r.get("models") if isinstance(r.get("models"), Mapping) else {}
    if models:
        body.append('<div class="note">models: ' + ", ".join(f"{_e(k)} = {_e(v)}" for k, v in models.items()) + "</div>")
    if r.get("notes"):
        body.append('<div class="note">' + _e(_join(r["notes"])) + "</div>")
    body.append("</div>")
    return "".join(body)


def _evidence_rows(extra: Mapping[str, Any]) -> str:
    """Time spans and match counts, when the detector gave them."""
    rows = []
    if "asset_start" in extra:
        rows.append(f"<tr><th>asset span</th><td>{_secs(extra['asset_start'])} – {_secs(extra['asset_end'])}</td></tr>")
    if "ref_start" in extra:
        rows.append(f"<tr><th>reference span</th><td>{_secs(extra['ref_start'])} – {_secs(extra['ref_end'])}</td></tr>")
    if "start" in extra and "end" in extra:
        rows.append(f"<tr><th>time span</th><td>{_secs(extra['start'])} – {_secs(extra['end'])}</td></tr>")
    if "timecode" in extra:
        rows.append(f"<tr><th>timecode</th><td>{_e(extra['timecode'])} (frame {_e(extra.get('frame'))})</td></tr>")
    for key in ("matches", "inliers", "ref_visible", "time_scale", "pitch_shift"):
        if key in extra:
            rows.append(f"<tr><th>{key.replace('_', ' ')}</th><td>{_e(extra[key])}</td></tr>")
    return "".join(rows)


def _secs(value: Any) -> str:
    t = _num(value)
    if t is None:
        return _e(value)
    return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"
