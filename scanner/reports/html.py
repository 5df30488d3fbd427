"""Static HTML report: counts, a filter/sort bar, then one card per matched reference.

Each asset is a section: its verdict, what to do next, and one card per matched reference with the
asset and the reference side by side (the matched region drawn), every detector's evidence in words
("Hamming 30 of 256 bits, block ≤ 82"), the calibrated fused score when fusion decided, and for
cleared or consented matches the catalog's clearance or consent record they rely on. Thumbnails live
next to the page in ``thumbs/`` (asset thumbnails are written by the scan, reference thumbnails here
from the catalog), so the folder can be zipped and sent as is; the page needs no network (its one
script is inline and constant, and the page's Content-Security-Policy allows only that script).

Records may come from files anyone with write access to a report folder could edit (shards,
resumed runs), so nothing from a record reaches the page unchecked: text is HTML-escaped,
numbers that go into SVG or file names are parsed as numbers first and dropped when they are not.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from scanner.fsutil import atomic_write_bytes
from scanner.reports.actions import describe_score, finding_action, likeness_of, next_step

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
    ref_id, key = f.get("reference_id"), _ref_key(f, extra)
    if key is not None and key not in written:
        data = ref_thumbnail(f)
        if data:
            atomic_write_bytes(thumbs / f"ref-{key}.jpg", data, shared=True)
        written.add(key)
    ref_img = f"thumbs/ref-{key}.jpg" if key is not None and (thumbs / f"ref-{key}.jpg").exists() else ""
    level = str(f.get("level"))
    talent = f.get("reference_kind") == "talent"
    kind = "talent" if talent else "work"
    frame = _int(extra.get("frame"))
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
    caption = f"asset @ {extra['timecode']}" if "timecode" in extra else "asset"
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
        + _overlay(shown, caption, _frame(extra, "asset"), _shapes(extra, "asset"))
        + _overlay(ref_img, f"{kind} #{ref_id}", _frame(extra, "ref"), _shapes(extra, "ref"))
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
    located = _evidence_rows(extra)
    if located:
        parts.append(f"<table>{located}</table>")
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
