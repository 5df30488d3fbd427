"""Static HTML report: counts, a filter/sort bar, then one card per matched reference.

Each asset is a section: its verdict, what to do next, and one card per matched reference with the
asset and the reference side by side (the matched region drawn), every detector's evidence in words
("Hamming 30 of 256 bits, block ≤ 82"), the calibrated fused score when fusion decided, and for
cleared or consented matches the catalog's clearance or consent record they rely on. Thumbnails live
next to the page in ``thumbs/`` (asset thumbnails are written by the scan, reference thumbnails here
from the catalog), so the folder can be zipped and sent as is; the page needs no network (its one
script is inline and constant, and the page's Content-Security-Policy allows only that script).

Evidence is drawn by its type (``scanner.types``: ``Box`` and ``Polygon`` over the thumbnail of the
image they name, ``Span`` on waveform strips and as a timeline bar, ``FrameRef`` as the frame's thumbnail
and timecode, ``Notes`` as a piano roll): a record's ``extra`` is read once by ``evidence_from_json``
and each item renders itself through ``singledispatch``, so no key of a record is guessed here.

Records may come from files anyone with write access to a report folder could edit (shards,
resumed runs), so nothing from a record reaches the page unchecked: text is HTML-escaped,
numbers that go into SVG or file names are parsed as numbers first and dropped when they are not
(``evidence_from_json`` keeps only well-formed evidence).
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from collections import Counter
from pathlib import Path
from functools import singledispatch
from typing import Any, Callable, Mapping, Sequence

from scanner.fsutil import atomic_write_bytes
from scanner.reports.actions import describe_score, finding_action, likeness_of, next_step
from scanner.types import (Box, Denoised, Duration, Evidence, FrameRef, ImageSize, Keypoints, Landmarks, Notes,
                           Polygon, Sample, Span, evidence_from_json)

COLOURS = {"block": "#c62828", "review": "#ef6c00", "pass": "#2e7d32", "error": "#6a1b9a", "cleared": "#1565c0",
           "consented": "#1565c0", "below review": "#9e9e9e"}
ORDER = {"block": 0, "error": 1, "review": 2, "pass": 3}
TEST_MODEL = "TEST MODEL"  # what a test model's label contains (detectors' ``model_label``)

Lookup = Callable[[int], Mapping[str, Any] | None]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;background:#fafafa}
h1{margin-bottom:.2rem} .meta{color:#666;font-size:.9rem;margin-bottom:1rem}
.counts span{display:inline-block;padding:.4rem .8rem;margin-right:.5rem;border-radius:4px;color:#fff;font-weight:600}
#bar{position:sticky;top:0;z-index:2;background:#fafafa;border-bottom:1px solid #ddd;padding:.6rem 0;margin:1rem 0;
display:flex;gap:.8rem;flex-wrap:wrap;align-items:center;font-size:.9rem}
#bar select,#bar input{font-size:.9rem;padding:.15rem .3rem;max-width:22rem} #shown{color:#555}
.asset{background:#fff;border:1px solid #ddd;border-left:8px solid #999;margin:1rem 0;padding:1rem;border-radius:4px;
content-visibility:auto;contain-intrinsic-size:auto 420px}
.asset h2{font-size:1rem;margin:0 0 .4rem 0;word-break:break-all}
.next{margin:.3rem 0 .6rem 0;font-weight:600} .next i{color:#555;font-weight:400;font-style:normal}
.card{border:1px solid #e3e3e3;border-left:5px solid #999;border-radius:4px;padding:.7rem;margin:.7rem 0;background:#fdfdfd}
.card h3{font-size:.95rem;margin:0 0 .3rem 0}
.badge{white-space:nowrap;color:#fff;padding:.1rem .5rem;border-radius:3px;font-size:.8rem;text-transform:uppercase;margin-right:.5rem}
.test{display:inline-block;background:#fff3cd;color:#7a5200;border:1px solid #e0b400;border-radius:3px;
padding:.1rem .4rem;font-size:.8rem;font-weight:700;margin-left:.4rem}
.pair{display:flex;gap:1rem;align-items:flex-start;margin:.6rem 0;flex-wrap:wrap}
.pair figure{margin:0;text-align:center;font-size:.8rem;color:#555}
.pair img{max-width:256px;max-height:256px;border:1px solid #ccc;background:#eee}
table{border-collapse:collapse;font-size:.85rem} td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}
.basis{background:#eef4fb;border:1px solid #c9dcf2;border-radius:4px;padding:.4rem .6rem;margin:.5rem 0;font-size:.85rem}
.figs{display:flex;gap:1rem;flex-wrap:wrap;margin:.5rem 0} .figs figure{margin:0;font-size:.8rem;color:#555}
.note{color:#666;font-size:.85rem} .err{color:#6a1b9a;font-weight:600} .closer{color:#777}
footer{margin-top:2rem;color:#666;font-size:.8rem;border-top:1px solid #ddd;padding-top:.6rem;word-break:break-all}
[hidden]{display:none!important}
"""

# The page's one script: filters and sorts what is already on the page (no data is built into it,
# no network). State lives in the URL fragment (#verdict=block&detector=image.face&ref=work-3&q=&sort=path),
# so a filtered view can be shared as a link and a test can load one.
JS = """
(function () {
  var ids = ["verdict", "detector", "ref", "q", "sort"];
  function el(id) { return document.getElementById("f-" + id); }
  function all(root, sel) { return Array.prototype.slice.call(root.querySelectorAll(sel)); }
  function show(node, on) { if (node.hidden === on) node.hidden = !on; }  // touch the DOM only on a change
  var box = document.getElementById("assets");
  // Read every data attribute once: filtering thousands of assets then touches only what changes.
  var items = all(box, ":scope > .asset").map(function (s) {
    return {el: s, verdict: s.dataset.verdict, path: s.dataset.path, lpath: s.dataset.path.toLowerCase(),
            refs: s.dataset.refs || "", sev: Number(s.dataset.sev), title: s.dataset.reftitle || "\uffff",
            cards: all(s, ".card").map(function (c) {
              return {el: c, detectors: " " + c.dataset.detectors + " ", ref: c.dataset.ref, level: c.dataset.level};
            })};
  });
  var rows = all(document, "#passed tr.item").map(function (t) {
    return {el: t, lpath: t.dataset.path.toLowerCase()};
  });
  var keys = {
    severity: function (s) { return [s.sev, s.path]; },
    path: function (s) { return [s.path]; },
    reference: function (s) { return [s.title, s.sev, s.path]; },
    verdict: function (s) { return [s.verdict, s.path]; }
  };
  function cmp(a, b) {
    for (var i = 0; i < a.length; i++) { if (a[i] < b[i]) return -1; if (a[i] > b[i]) return 1; }
    return 0;
  }
  var order = "severity";  // the order the page was written in
  function apply() {
    var v = el("verdict").value, d = el("detector").value, r = el("ref").value;
    var q = el("q").value.trim().toLowerCase(), sort = keys[el("sort").value] ? el("sort").value : "severity";
    var byLevel = v === "cleared" || v === "consented", byCard = !!(d || r || byLevel), shown = 0;
    items.forEach(function (s) {
      var any = false;
      s.cards.forEach(function (c) {
        var ok = (!d || c.detectors.indexOf(" " + d + " ") >= 0) && (!r || c.ref === r) && (!byLevel || c.level === v);
        show(c.el, ok); any = any || ok;
      });
      var ok = (!v || byLevel || v === s.verdict || (v === "flagged" && s.verdict !== "pass")) &&
               (!q || s.lpath.indexOf(q) >= 0 || s.refs.indexOf(q) >= 0) && (!byCard || any);
      show(s.el, ok);
      if (ok) shown++;
    });
    var rowsShown = 0;
    rows.forEach(function (t) {
      var ok = (!v || v === "pass") && !d && !r && (!q || t.lpath.indexOf(q) >= 0);
      show(t.el, ok);
      if (ok) rowsShown++;
    });
    if (sort !== order) {
      var key = keys[sort];
      items.sort(function (a, b) { return cmp(key(a), key(b)); });
      var frag = document.createDocumentFragment();
      items.forEach(function (s) { frag.appendChild(s.el); });
      box.appendChild(frag);
      order = sort;
    }
    show(document.getElementById("passed"), rowsShown > 0);
    shown += rowsShown;
    document.getElementById("shown").textContent = "showing " + shown + " of " + (items.length + rows.length) + " assets";
    document.body.setAttribute("data-shown", String(shown));
    var state = ids.map(function (k) { return el(k).value ? k + "=" + encodeURIComponent(el(k).value) : ""; })
      .filter(function (x) { return x && x !== "sort=severity"; }).join("&");
    if (history.replaceState) history.replaceState(null, "", state ? "#" + state : location.pathname + location.search);
  }
  location.hash.replace(/^#/, "").split("&").forEach(function (part) {
    var kv = part.split("="), k = kv[0], f = el(k);
    if (ids.indexOf(k) < 0 || !f || kv.length < 2) return;
    var val;
    try { val = decodeURIComponent(kv.slice(1).join("=")); } catch (e) { return; }
    if (f.tagName !== "SELECT" || Array.prototype.some.call(f.options, function (o) { return o.value === val; })) f.value = val;
  });
  ids.forEach(function (k) { el(k).addEventListener(k === "q" ? "input" : "change", apply); });
  apply();
  document.body.setAttribute("data-ready", "1");
})();
"""
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(JS.encode("utf-8")).digest()).decode("ascii")
CSP = (f"default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; "
       f"script-src '{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")
VERDICT_FILTERS = (("", "all verdicts"), ("flagged", "block, review, error"), ("block", "block"), ("review", "review"),
                   ("error", "error"), ("pass", "pass"), ("cleared", "cleared matches"),
                   ("consented", "consented matches"))
SORTS = (("severity", "severity"), ("path", "asset path"), ("reference", "reference"), ("verdict", "verdict"))


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
    title: str = "Scan report", meta: Mapping[str, str] | None = None, *,
    work: Lookup | None = None, consent: Lookup | None = None, footer: Mapping[str, str] | None = None,
) -> Path:
    """Write ``out`` (an .html file) for JSONL-style ``records``; returns its path.

    ``work(id)`` and ``consent(id)`` give the catalog's work and consent records (as dicts) that
    cleared and consented matches rely on; ``meta`` is shown under the title (its ``project`` names
    the project in next steps), ``footer`` at the end (e.g. the audit head)."""
    out = Path(out)
    thumbs = out.parent / "thumbs"
    project = str((meta or {}).get("project") or "")
    counts = Counter(str(r.get("verdict")) for r in records)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'>"
             f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
             f"<title>{_e(title)}</title><style>{CSS}</style></head><body><h1>{_e(title)}</h1>"]
    if meta:
        parts.append('<div class="meta">' + " · ".join(f"{_e(k)}: {_e(v)}" for k, v in meta.items()) + "</div>")
    levels = Counter(str(f.get("level")) for r in records for f in _findings(r))
    parts.append('<div class="counts">' + "".join(
        f'<span style="background:{COLOURS[v]}">{v}: {counts.get(v, 0)}</span>' for v in ("block", "review", "error", "pass")
    ) + f" <span style='background:#555'>total: {len(records)}</span>"
        + "".join(f'<span style="background:{COLOURS[v]}">{v} matches: {levels[v]}</span>'
                  for v in ("cleared", "consented") if levels.get(v)) + "</div>")
    with_cards = [r for r in records if r.get("verdict") != "pass" or _findings(r)]
    passed = sorted((r for r in records if r.get("verdict") == "pass" and not _findings(r)), key=lambda r: str(r.get("path")))
    parts.append(_bar(with_cards))
    with_cards.sort(key=lambda r: (ORDER.get(str(r.get("verdict")), 9), str(r.get("path"))))
    parts.append('<div id="assets">')
    written: set[str] = set()
    lookups = {"work": work or (lambda _id: None), "consent": consent or (lambda _id: None)}
    for r in with_cards:
        parts.append(_asset_html(r, thumbs, ref_thumbnail, written, project, lookups))
    parts.append("</div>")
    parts.append(f'<div id="passed"{"" if passed else " hidden"}><h3>Passed with no match ({len(passed)})</h3>'
                 "<table><tr><th>asset</th><th>sha256</th><th>notes</th></tr>")
    parts.extend(f'<tr class="item" data-verdict="pass" data-path="{_e(r.get("path"))}"><td>{_e(r.get("path"))}</td>'
                 f"<td><code>{_e(str(r.get('sha256') or '')[:16])}</code></td>"
                 f"<td class='note'>{_e(_join(r.get('notes')))}</td></tr>" for r in passed)
    parts.append("</table></div>")
    if footer:
        parts.append("<footer>" + "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in footer.items()) + "</footer>")
    parts.append(f"<script>{JS}</script></body></html>")
    atomic_write_bytes(out, "\n".join(parts).encode("utf-8"), shared=True)
    return out


def _findings(r: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    findings = r.get("findings")
    return [f for f in findings if isinstance(f, Mapping)] if isinstance(findings, list) else []


def _extra(f: Mapping[str, Any]) -> Mapping[str, Any]:
    extra = f.get("extra")
    return extra if isinstance(extra, Mapping) else {}


def _evidence(f: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Every detector's evidence for a finding (older records without it: the finding's own score)."""
    ev = f.get("evidence")
    rows = [e for e in ev if isinstance(e, Mapping)] if isinstance(ev, (list, tuple)) else []
    if rows:
        return rows
    return [{k: f.get(k) for k in ("detector", "model", "score", "metric", "threshold_block", "threshold_review")}
            | {"level": f.get("level")}]


def _ref_token(f: Mapping[str, Any]) -> str:
    """The reference as a filter value: ``work-3`` / ``talent-1`` (ids that are not numbers: ``x``)."""
    ref_id = _int(f.get("reference_id"))
    kind = "talent" if f.get("reference_kind") == "talent" else "work"
    return f"{kind}-{'x' if ref_id is None else ref_id}"


def _ref_label(f: Mapping[str, Any]) -> str:
    kind = "talent" if f.get("reference_kind") == "talent" else "work"
    return f"{kind} #{f.get('reference_id')} {f.get('reference_title')}"


def _detectors_of(f: Mapping[str, Any]) -> list[str]:
    names = [str(f.get("detector"))] + [str(e.get("detector")) for e in _evidence(f)]
    return list(dict.fromkeys(n for n in names if n and not any(c.isspace() for c in n)))


def _option(value: str, label: str) -> str:
    return f'<option value="{_e(value)}">{_e(label)}</option>'


def _bar(records: Sequence[Mapping[str, Any]]) -> str:
    """The filter/sort bar; its choices come from the records (escaped like everything else)."""
    detectors: set[str] = set()
    refs: dict[str, str] = {}
    for r in records:
        for f in _findings(r):
            detectors.update(_detectors_of(f))
            refs.setdefault(_ref_token(f), _ref_label(f))
    return ('<div id="bar"><label>verdict <select id="f-verdict">'
            + "".join(_option(v, label) for v, label in VERDICT_FILTERS) + "</select></label>"
            + '<label>detector <select id="f-detector"><option value="">all detectors</option>'
            + "".join(_option(d, d) for d in sorted(detectors)) + "</select></label>"
            + '<label>reference <select id="f-ref"><option value="">all references</option>'
            + "".join(_option(k, v) for k, v in sorted(refs.items(), key=lambda kv: kv[1].lower())) + "</select></label>"
            + '<label>search <input id="f-q" type="search" placeholder="asset path or reference"></label>'
            + '<label>sort <select id="f-sort">' + "".join(_option(v, label) for v, label in SORTS) + "</select></label>"
            + '<span id="shown"></span></div>')


def _test_detectors(r: Mapping[str, Any]) -> set[str]:
    """Detectors whose model label says it is a test model (random weights)."""
    models = r.get("models") if isinstance(r.get("models"), Mapping) else {}
    return {str(k) for k, v in models.items() if TEST_MODEL in str(v)}


def _asset_html(r: Mapping[str, Any], thumbs: Path, ref_thumbnail: Callable[[Mapping[str, Any]], bytes | None],
                written: set[str], project: str, lookups: Mapping[str, Lookup]) -> str:
    verdict = str(r.get("verdict"))
    findings = _findings(r)
    refs_text = " ".join(f"{f.get('reference_title')} {f.get('rights_holder')} {_ref_token(f)}" for f in findings)
    first_ref = str(findings[0].get("reference_title")).lower() if findings else ""
    body = [f'<section class="asset" style="border-left-color:{COLOURS.get(verdict, "#999")}" '
            f'data-verdict="{_e(verdict)}" data-sev="{ORDER.get(verdict, 9)}" data-path="{_e(r.get("path"))}" '
            f'data-refs="{_e(refs_text.lower())}" data-reftitle="{_e(first_ref)}">'
            f"<h2>{_badge(verdict)}{_e(r.get('path'))}</h2>"]
    step = next_step(r, project)
    if step:
        body.append(f'<div class="next"><i>Next:</i> {_e(step)}</div>')
    if verdict == "error":
        body.append(f'<div class="err">could not be checked: {_e(r.get("error"))}</div>')
    sha = _sha(r)
    asset_img = f"thumbs/{sha}.jpg" if sha and (thumbs / f"{sha}.jpg").exists() else ""
    tests = _test_detectors(r)
    for f in findings:
        body.append(_card(r, f, thumbs, ref_thumbnail, written, project, lookups, sha, asset_img, tests))
    models = r.get("models") if isinstance(r.get("models"), Mapping) else {}
    if models:
        body.append('<div class="note">models: ' + ", ".join(f"{_e(k)} = {_e(v)}" for k, v in models.items()) + "</div>")
    if r.get("notes"):
        body.append('<div class="note">' + _e(_join(r["notes"])) + "</div>")
    body.append("</section>")
    return "".join(body)


def _card(r: Mapping[str, Any], f: Mapping[str, Any], thumbs: Path,
          ref_thumbnail: Callable[[Mapping[str, Any]], bytes | None], written: set[str], project: str,
          lookups: Mapping[str, Lookup], sha: str, asset_img: str, tests: set[str]) -> str:
    """One matched reference: both images once, the region drawn, every detector's evidence, the basis."""
    extra = _extra(f)
    items = evidence_from_json(extra)
    ref_id, key = f.get("reference_id"), _ref_key(f, items, extra)
    if key is not None and key not in written:
        data = ref_thumbnail(f)
        if data:
            atomic_write_bytes(thumbs / f"ref-{key}.jpg", data, shared=True)
        written.add(key)
    ref_img = f"thumbs/ref-{key}.jpg" if key is not None and (thumbs / f"ref-{key}.jpg").exists() else ""
    level = str(f.get("level"))
    talent = f.get("reference_kind") == "talent"
    kind = "talent" if talent else "work"
    at = next((e for e in items if isinstance(e, FrameRef)), None)
    frame = at.frame if at is not None else None
    frame_img = f"thumbs/{sha}-f{frame}.jpg" if sha and frame is not None else ""
    shown = frame_img if frame_img and (thumbs / frame_img[len("thumbs/"):]).exists() else asset_img
    evidence = _evidence(f)
    detector = str(f.get("detector"))
    fused = detector.startswith("fused.")
    # A test model made this finding when it decided it, or when it is one of the detectors that reached a level.
    test_made = detector in tests or (fused and any(str(e.get("detector")) in tests for e in evidence)) or any(
        str(e.get("detector")) in tests and e.get("level") in ("block", "review") for e in evidence)
    mark = (f'<span class="test" title="random weights: this evidence says nothing about the asset">'
            f"{_e(TEST_MODEL)}: not evidence</span>" if test_made else "")
    caption = f"asset @ {at.timecode}" if at is not None and at.timecode is not None else "asset"
    action, step = finding_action(f, project, r.get("media_type")), next_step(r, project)  # said once when the same
    subject = f"{likeness_of(f.get('detector'))} of " if talent else ""
    parts = [
        f'<article class="card" style="border-left-color:{COLOURS.get(level, "#999")}" data-level="{_e(level)}" '
        f'data-ref="{_e(_ref_token(f))}" data-detectors="{_e(" ".join(_detectors_of(f)))}"'
        f'{" data-test-model=\"1\"" if test_made else ""}>',
        f"<h3>{_badge(level)}{_e(subject)}{kind} #{_e(ref_id)} {_e(f.get('reference_title'))}"
        + ("" if talent else f" — {_e(f.get('rights_holder'))} ({_e(f.get('clearance'))})") + f"{mark}</h3>",
        (f'<div class="next"><i>Next:</i> {_e(action)}</div>' if action != step else ""),
        '<div class="pair">'
        + _overlay(shown, caption, *_picture(items, "asset"))
        + _overlay(ref_img, f"{kind} #{ref_id}", *_picture(items, "ref"))
        + "</div>",
        "<table><tr><th>detector</th><th>model</th><th>level by score</th><th>evidence</th><th>closer means</th></tr>",
    ]
    if fused:
        text, closer = describe_score(f)
        parts.append(f"<tr><td><b>{_e(detector)}</b></td><td>{_e(f.get('model'))}</td><td>{_badge(_level_of(f))}</td>"
                     f"<td><b>{_e(text)}</b> (decides for the detectors it combines)</td>"
                     f'<td class="closer">{_e(closer)}</td></tr>')
    for e in evidence:
        text, closer = describe_score(e)
        name = str(e.get("detector"))
        lead = " (decided)" if name == detector else ""
        test = f'<span class="test">{_e(TEST_MODEL)}</span>' if name in tests else ""
        parts.append(f"<tr><td>{_e(name)}{lead}</td><td>{_e(e.get('model'))}{test}</td>"
                     f"<td>{_badge(str(e.get('level')))}</td><td>{_e(text)}</td>"
                     f'<td class="closer">{_e(closer)}</td></tr>')
    parts.append("</table>")
    located = _evidence_rows(items)
    if located:
        parts.append(f"<table>{located}</table>")
    parts.append(_figures(items))
    parts.append(_basis(f, lookups))
    if f.get("note") and not talent:  # a talent's note is the consent reason, shown with the record
        parts.append(f'<div class="note">{_e(f["note"])}</div>')
    parts.append("</article>")
    return "".join(parts)


def _level_of(f: Mapping[str, Any]) -> str:
    """The fused score's own level (before clearance/consent turned it into cleared/consented)."""
    score, block, review = (_num(f.get(k)) for k in ("score", "threshold_block", "threshold_review"))
    if score is None or block is None or review is None:
        return "?"
    lower = f.get("metric") == "hamming"
    if (score <= block) if lower else (score >= block):
        return "block"
    if (score <= review) if lower else (score >= review):
        return "review"
    return "below review"


def _basis(f: Mapping[str, Any], lookups: Mapping[str, Lookup]) -> str:
    """The catalog record a cleared/consented (or consent-less) match rests on."""
    if f.get("reference_kind") == "talent":
        cid = _int(f.get("consent_id"))
        note = f'<br><span class="note">{_e(f.get("note"))}</span>' if f.get("note") else ""
        if cid is None:
            return f'<div class="basis"><b>consent:</b> no consent record applies{note}</div>'
        rec = lookups["consent"](cid)
        if not rec:
            return f'<div class="basis"><b>consent record #{cid}</b> (not in this catalog){note}</div>'
        window = f"{rec.get('valid_from') or 'any date'} → {rec.get('valid_until') or 'open-ended'}"
        text = (f"<b>consent record #{cid}</b>: {_e(rec.get('action'))}, scope {_e(rec.get('scope'))}, "
                f"project {_e(rec.get('project'))}, valid {_e(window)}, document <b>{_e(rec.get('document'))}</b>, "
                f"recorded {_e(rec.get('recorded_at'))}" + (f" by {_e(rec['recorded_by'])}" if rec.get("recorded_by") else ""))
        revoked = rec.get("revoked_by")
        if isinstance(revoked, Mapping):
            text += (f"<br><b>revoked</b> by record #{_e(revoked.get('id'))} from {_e(revoked.get('valid_from'))}"
                     f", document {_e(revoked.get('document'))}")
        return f'<div class="basis">{text}{note}</div>'
    if f.get("level") != "cleared":
        return ""
    ref_id = _int(f.get("reference_id"))
    rec = lookups["work"](ref_id) if ref_id is not None else None
    if not rec:
        return (f'<div class="basis"><b>clearance:</b> {_e(f.get("clearance"))}, rights holder '
                f"{_e(f.get('rights_holder'))} (work #{_e(f.get('reference_id'))} is not in this catalog)</div>")
    return (f'<div class="basis"><b>clearance: {_e(rec.get("clearance"))}</b> — catalog work #{ref_id} '
            f"{_e(rec.get('title'))}, rights holder {_e(rec.get('rights_holder'))}, registered "
            f"{_e(rec.get('added_at'))}, source {_e(rec.get('path'))}, sha256 <code>{_e(str(rec.get('sha256'))[:16])}</code>"
            f'<br><span class="note">the catalog records the clearance status, not the licence document: '
            f"keep the licence with the rights holder's paperwork</span></div>")


def _join(notes: Any) -> str:
    if isinstance(notes, (list, tuple)):
        return "; ".join(str(n) for n in notes)
    return str(notes) if notes else ""


def _ref_key(f: Mapping[str, Any], items: Sequence[Evidence], extra: Mapping[str, Any]) -> str | None:
    """File-name key of a finding's reference thumbnail; None when the ids are not whole numbers
    (a key from a record must never become a path outside ``thumbs/``)."""
    ref_id = _int(f.get("reference_id"))
    if ref_id is None:
        return None
    if f.get("reference_kind") == "talent":
        sample = next((e.id for e in items if isinstance(e, Sample)), None)
        if sample is None and extra.get("sample_id") is not None:
            return None  # a sample id that is no whole number never reaches the catalog
        return f"talent-{ref_id}-{'x' if sample is None else sample}"
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


def _picture(items: Sequence[Evidence], which: str) -> tuple[tuple[float, float] | None, list[str]]:
    """(overlay coordinate frame, shapes) for the asset's or the reference's thumbnail: the pixel size
    for images (boxes, polygons), [duration, 1] for waveform strips (time spans)."""
    size = next((e for e in items if isinstance(e, ImageSize) and e.image == which), None)
    duration = next((e for e in items if isinstance(e, Duration) and e.media == which), None)
    if size is not None:
        frame, timed = (float(size.width), float(size.height)), False
    elif duration is not None:
        frame, timed = (float(duration.seconds), 1.0), True
    else:
        return None, []
    return frame, [s for e in items if (s := _shape(e, which, timed))]


_STROKE = 'fill="none" stroke="#ffeb3b" stroke-width="1%" vector-effect="non-scaling-stroke" style="stroke-width:3"'


@singledispatch
def _shape(item: Evidence, which: str, timed: bool) -> str:
    """The SVG shape ``item`` adds to the ``which`` thumbnail ('' for evidence that is not drawn there)."""
    return ""


@_shape.register
def _(item: Box, which: str, timed: bool) -> str:
    if timed or item.image != which:
        return ""
    return f'<rect x="{_c(item.x)}" y="{_c(item.y)}" width="{_c(item.w)}" height="{_c(item.h)}" {_STROKE}/>'


@_shape.register
def _(item: Polygon, which: str, timed: bool) -> str:
    if timed or item.image != which or item.role != "region" or len(item.points) < 3:
        return ""
    pts = " ".join(f"{_c(x)},{_c(y)}" for x, y in item.points)
    return f'<polygon points="{pts}" {_STROKE}/>'


@_shape.register
def _(item: Span, which: str, timed: bool) -> str:
    rng = item.asset if which == "asset" else item.ref
    if not timed or rng is None:
        return ""
    a, b = rng
    return f'<rect x="{_c(a)}" y="0" width="{_c(max(b - a, 0.01))}" height="1" fill="#ffeb3b" fill-opacity="0.45"/>'


@singledispatch
def _rows(item: Evidence) -> list[tuple[str, str]]:
    """(label, HTML-safe value) rows ``item`` adds to the card's evidence table."""
    return []


@_rows.register
def _(item: Span) -> list[tuple[str, str]]:
    if item.layout == "segment":
        return [("time span", _range(item.asset))]
    return [(label, _range(rng)) for label, rng in (("asset span", item.asset), ("reference span", item.ref)) if rng]


@_rows.register
def _(item: FrameRef) -> list[tuple[str, str]]:
    frame = f"frame {item.frame}" if item.frame is not None else ""
    if item.timecode is not None:
        return [("timecode", _e(item.timecode) + (f" ({frame})" if frame else ""))]
    if item.time is not None:
        return [("time", _secs(item.time) + (f" ({frame})" if frame else ""))]
    return [("frame", _e(item.frame))]


@_rows.register
def _(item: Landmarks) -> list[tuple[str, str]]:
    rows = [("matches", _e(item.matches))]
    if item.time_scale is not None:
        rows.append(("time scale", _e(item.time_scale)))
    if item.pitch_shift is not None:
        rows.append(("pitch shift", f"{_e(item.pitch_shift)} semitones"))
    return rows


@_rows.register
def _(item: Denoised) -> list[tuple[str, str]]:
    if item.what == "speech":
        return [("compared", _e("the asset's speech after denoising (RNNoise): music or noise covers the voice there"))]
    return [("read from", _e("the music under the dialogue (RNNoise's residual: the mix with the voice taken out)"))]


@_rows.register
def _(item: Keypoints) -> list[tuple[str, str]]:
    rows = [("inliers", _e(item.inliers))]
    if item.ref_visible is not None:
        rows.append(("ref visible", _e(item.ref_visible)))
    if item.summary:
        rows.append(("rests on", _e(item.summary)))
    return rows


@_rows.register
def _(item: Notes) -> list[tuple[str, str]]:
    rows = []
    if item.transposition is not None:
        rows.append(("transposition", f"{item.transposition:+d} semitones (asset = reference {item.transposition:+d})"))
    if item.tempo_ratio is not None:
        rows.append(("tempo ratio", f"×{_c(item.tempo_ratio)} (asset tempo / reference tempo)"))
    if item.aligned is not None:
        rows.append(("aligned notes", _e(item.aligned)))
    return rows


def _evidence_rows(items: Sequence[Evidence]) -> str:
    """The located evidence in words: spans, timecode, match counts, what the match rests on."""
    return "".join(f"<tr><th>{_e(label)}</th><td>{value}</td></tr>" for e in items for label, value in _rows(e))


def _range(rng: tuple[float, float] | None) -> str:
    return "" if rng is None else f"{_secs(rng[0])} – {_secs(rng[1])}"


def _secs(value: Any) -> str:
    t = _num(value)
    if t is None:
        return _e(value)
    return f"{int(t // 3600):02d}:{int(t % 3600 // 60):02d}:{t % 60:06.3f}"


# ----------------------------------------------------------------------------- pictures beside the table

def _figures(items: Sequence[Evidence]) -> str:
    """Pictures of the evidence that has one: a timeline of the matched spans, a melody's piano roll."""
    spans = [e for e in items if isinstance(e, Span)]
    notes = [e for e in items if isinstance(e, Notes)]
    parts = [_timeline(spans, {e.media: e.seconds for e in items if isinstance(e, Duration)})] if spans else []
    parts.extend(_piano_roll(n) for n in notes)
    parts = [p for p in parts if p]
    return f'<div class="figs">{"".join(parts)}</div>' if parts else ""


def _timeline(spans: Sequence[Span], durations: Mapping[str, float]) -> str:
    """One bar per recording (asset, reference) with its matched span marked, over its duration
    (or up to the span's end when the duration is unknown)."""
    lanes = []
    for which, label in (("asset", "asset"), ("ref", "reference")):
        for s in spans:
            rng = s.asset if which == "asset" else s.ref
            if rng is not None:
                lanes.append((label, rng, durations.get(which)))
                break
    if not lanes:
        return ""
    width, lane_h, left = 360.0, 22.0, 70.0
    out = [f'<svg class="timeline" viewBox="0 0 {_c(left + width + 10)} {_c(lane_h * len(lanes) + 6)}" '
           f'width="{_c(left + width + 10)}" height="{_c(lane_h * len(lanes) + 6)}" role="img">'
           "<title>matched time spans</title>"]
    for i, (label, (a, b), duration) in enumerate(lanes):
        a, b = max(0.0, min(a, b)), max(a, b)
        total = max(duration or 0.0, b, 1e-6)
        y = 3 + i * lane_h
        x0, x1 = left + a / total * width, left + b / total * width
        out.append(f'<text x="0" y="{_c(y + 13)}" font-size="11">{_e(label)}</text>'
                   f'<rect x="{_c(left)}" y="{_c(y + 3)}" width="{_c(width)}" height="12" fill="#e0e0e0"/>'
                   f'<rect class="span" x="{_c(x0)}" y="{_c(y + 3)}" width="{_c(max(x1 - x0, 1.0))}" height="12" '
                   f'fill="#f9a825"><title>{_range((a, b))} of {_secs(total)}</title></rect>')
    out.append("</svg>")
    return "<figure class='tl'>" + "".join(out) + "<figcaption>matched span over each recording's length</figcaption></figure>"


_NOTE_NAMES = ("C", "C♯", "D", "D♯", "E", "F", "F♯", "G", "G♯", "A", "A♯", "B")


def _note_name(pitch: int) -> str:
    return f"{_NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


MAX_ROLL_NOTES = 512  # notes drawn per sequence (detectors send a sample of at most 48)


def _piano_roll(n: Notes, width: float = 480.0, height: float = 170.0) -> str:
    """The aligned notes as a small piano roll: asset notes filled, reference notes outlined, moved
    onto the asset's key (by the transposition) and time (by a line through the aligned onsets), so
    matching notes overlap. A note without a duration lasts until the next one (at most 0.5 s)."""
    pairs = list(zip(n.asset, n.ref))[:MAX_ROLL_NOTES]
    if not pairs:
        return ""
    shift = n.transposition or 0
    ta = [float(a.onset) for a, _ in pairs]
    tr = [float(r.onset) for _, r in pairs]
    mean_a, mean_r = sum(ta) / len(ta), sum(tr) / len(tr)
    var = sum((t - mean_r) ** 2 for t in tr)
    if len(pairs) >= 2 and var > 1e-9:
        slope = sum((t - mean_r) * (u - mean_a) for t, u in zip(tr, ta)) / var
    else:
        slope = 1.0 / n.tempo_ratio if n.tempo_ratio else 1.0
    slope = slope if slope > 0 else 1.0
    offset = mean_a - slope * mean_r

    def lengths(seq: Sequence[Any], scale: float) -> list[float]:
        out = []
        for i, note in enumerate(seq):
            if note.duration is not None:
                out.append(float(note.duration) * scale)
            else:
                gap = (float(seq[i + 1].onset) - float(note.onset)) * scale if i + 1 < len(seq) else 0.25
                out.append(min(max(gap, 0.05), 0.5))
        return out

    asset = [(t, float(a.pitch), d) for t, (a, _), d in zip(ta, pairs, lengths([a for a, _ in pairs], 1.0))]
    ref = [(offset + slope * t, float(r.pitch + shift), d)
           for t, (_, r), d in zip(tr, pairs, lengths([r for _, r in pairs], slope))]
    t0 = min(t for t, _, _ in asset + ref)
    t1 = max(t + d for t, _, d in asset + ref)
    lo = min(p for _, p, _ in asset + ref) - 1
    hi = max(p for _, p, _ in asset + ref) + 1
    left, pad, bottom = 34.0, 4.0, 16.0
    span_t, span_p = max(t1 - t0, 1e-6), max(hi - lo, 1.0)
    row = (height - pad - bottom) / span_p

    def x(t: float) -> float:
        return left + (t - t0) / span_t * (width - left - pad)

    def y(p: float) -> float:
        return pad + (hi - p - 0.5) * row

    out = [f'<svg class="pianoroll" viewBox="0 0 {_c(width)} {_c(height)}" width="{_c(width)}" height="{_c(height)}" '
           'role="img"><title>aligned melody notes: asset filled, reference outlined</title>'
           f'<rect x="{_c(left)}" y="{_c(pad)}" width="{_c(width - left - pad)}" height="{_c(height - pad - bottom)}" '
           'fill="#f5f5f5"/>']
    lowest = int(min(p for _, p, _ in asset + ref))
    for p in range(int(math.ceil(lo)), int(hi) + 1):
        if p % 12 == 0 or (p == lowest and not any(q % 12 == 0 for q in range(int(lo), int(hi) + 1))):
            # a line and name at every C (at the lowest note when the range holds no C)
            out.append(f'<line x1="{_c(left)}" x2="{_c(width - pad)}" y1="{_c(y(p) + row / 2)}" '
                       f'y2="{_c(y(p) + row / 2)}" stroke="#bdbdbd"/><text x="0" y="{_c(y(p) + row / 2 + 4)}" '
                       f'font-size="10">{_note_name(p)}</text>')
    for cls, paint, notes in (("asset-note", 'fill="#1565c0" fill-opacity="0.75"', asset),
                              ("ref-note", 'fill="none" stroke="#ef6c00" stroke-width="1.5"', ref)):
        out.extend(f'<rect class="{cls}" x="{_c(x(t))}" y="{_c(y(p))}" width="{_c(max(x(t + d) - x(t), 1.5))}" '
                   f'height="{_c(max(row, 1.0))}" {paint}/>' for t, p, d in notes)
    out.append(f'<text x="{_c(left)}" y="{_c(height - 3)}" font-size="10">{_secs(t0)}</text>'
               f'<text x="{_c(width - pad)}" y="{_c(height - 3)}" font-size="10" text-anchor="end">{_secs(t1)}'
               " (asset time)</text></svg>")
    moved = f"transposed {shift:+d} semitones" if shift else "at its own pitch"
    count = f"{len(pairs)} of {n.aligned} aligned notes" if n.aligned is not None else f"{len(pairs)} aligned notes"
    caption = (f"melody: asset notes (filled) and reference notes (outlined, {moved}, its time mapped onto the "
               f"asset's{f', tempo ×{_c(n.tempo_ratio)}' if n.tempo_ratio else ''}); {count}")
    return f"<figure class='roll'>{''.join(out)}<figcaption>{_e(caption)}</figcaption></figure>"
