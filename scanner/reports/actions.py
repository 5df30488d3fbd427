"""What a reviewer should do next, per finding and per asset, in words (HTML cards and terminal summary).

Pure functions of a JSONL record (a dict as ``AssetResult.to_dict`` writes it, possibly from an edited
shard file): every field is read defensively and the result is plain text the caller escapes.
"""

from __future__ import annotations

from typing import Any, Mapping

from scanner.errors import ConfigError
from scanner.types import SCORE_NORMALISED_MARK


def declared(detector: Any, attribute: str, default: Any = None) -> Any:
    """A class attribute the detector named in a record declares (``hash_bits``, ``score_unit``,
    ``sample_kind``), or ``default`` for a name no registered detector has (fused scores, old or
    edited records): reports learn these facts from the detector, never from a list of names."""
    from scanner.detectors.base import detector_class  # the registry imports every detector module

    try:
        cls = detector_class(str(detector))
    except ConfigError:
        return default
    value = getattr(cls, attribute, None)
    return default if value is None else value


def _s(x: Any) -> str:
    return "" if x is None else str(x)


def fmt_number(x: Any) -> str:
    """A score or threshold as a reviewer reads it: 30 not 30.0, 0.9759 not 0.97590001."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return _s(x)
    if x != x or x in (float("inf"), float("-inf")):
        return str(x)
    if float(x).is_integer():
        return str(int(x))
    return f"{x:.4f}".rstrip("0").rstrip(".")


def describe_score(ev: Mapping[str, Any]) -> tuple[str, str]:
    """(score in words with its thresholds, what "closer" means) for one detector's evidence dict
    (detector, score, metric, threshold_block, threshold_review), e.g.
    ("Hamming 30 of 256 bits, block ≤ 82, review ≤ 85", "lower is closer")."""
    metric, det = _s(ev.get("metric")), _s(ev.get("detector"))
    score, block, review = (fmt_number(ev.get(k)) for k in ("score", "threshold_block", "threshold_review"))
    if metric == "hamming":
        bits = declared(det, "hash_bits")
        text = f"Hamming {score} of {bits} bits" if bits else f"Hamming distance {score} bits"
        sign, closer = "≤", "lower is closer (0 = identical hash)"
    elif metric == "count":
        text = f"{score} {declared(det, 'score_unit', 'verified matches')}"
        sign, closer = "≥", "higher is closer (more verified matches)"
    elif metric == "cosine" and SCORE_NORMALISED_MARK in _s(ev.get("model")):
        text = f"normalised cosine {score}"
        sign, closer = "≥", "higher is closer (cosine minus the asset's similarity to a background set, halved)"
    elif metric == "cosine":
        text = f"cosine {score}"
        sign, closer = "≥", "higher is closer (1 = same direction)"
    elif metric == "probability":
        text = f"calibrated fused score {score}"
        sign, closer = "≥", "higher is closer (calibrated probability of a copy)"
    else:
        text, sign, closer = f"score {score} ({metric})", "?", "unknown metric"
    return f"{text}, block {sign} {block}, review {sign} {review}", closer


def likeness_of(detector: Any) -> str:
    """"face", "voice" or "likeness" for a talent finding's detector."""
    return str(declared(_s(detector), "sample_kind", "likeness"))


def _replace(media_type: Any) -> str:
    return "replace the audio" if media_type == "audio" else "replace the shot"


def finding_action(f: Mapping[str, Any], project: str = "", media_type: Any = None) -> str:
    """The next step for one finding (one matched reference)."""
    level, note = _s(f.get("level")), _s(f.get("note"))
    title, holder = _s(f.get("reference_title")), _s(f.get("rights_holder")) or "an unknown rights holder"
    replace = _replace(media_type)
    if f.get("reference_kind") == "talent":
        what = f"{title}'s {likeness_of(f.get('detector'))}"
        where = f"in project {project}" if project else "(no --project given: only '*' grants apply)"
        consent = f" #{f['consent_id']}" if f.get("consent_id") is not None else ""
        if level == "consented":
            return f"consented: {what} is covered by consent{consent}; keep the consent record with the delivery"
        if "union-covered" in note:
            return f"union-covered talent: {what} needs union review before use, although consent{consent} is valid"
        if note.startswith("no consent") or not note:
            step = f"no consent on record for {what} {where}: record signed consent (scanner consent grant) or {replace}"
        else:  # expired, revoked, not yet started
            step = f"{what}: {note}: renew consent or {replace}"
        if level == "review":
            return f"possible likeness, compare by eye; if it is {title}: {step}"
        return step
    if level == "cleared":
        return f"cleared: {_s(f.get('clearance'))} work by {holder}; keep the licence on file"
    step = f"uncleared work by {holder}: obtain clearance or {replace}"
    if level == "review":
        return f"possible copy of {title!r}, compare by eye; if it is a copy: {step}"
    return step


def error_action(error: Any) -> str:
    """The next step for an asset that could not be checked, from its error text."""
    e = _s(error).lower()
    if "no enabled detector" in e or "cannot be checked yet" in e:
        return "no enabled detector reads this media type: enable one (--detectors) and scan again"
    if "could not check this asset" in e:
        return "a model failed on this file: scan it again; if it keeps failing, report it with the file"
    if "needs pyav" in e:
        return "the scanner lacks a decoder for this file: install PyAV and scan again"
    if "limit" in e or "decompression" in e:
        return ("file exceeds the scanner's limits: re-export it at delivery size, or raise the limit "
                "(max_pixels, max_file_bytes, max_audio_seconds) if it is genuine")
    if "cannot access" in e or "cannot read" in e or "no such file" in e or "permission" in e:
        return "file cannot be read: check its permissions and storage, then scan again"
    if "could not be checked" in e or "the rest" in e or "unseen" in e:
        return "part of the file could not be checked: re-export it and scan again (never a pass)"
    if "not a recognised" in e or "not a supported" in e or "not supported" in e:
        return "unsupported or unrecognised format: export as PNG, JPEG, TIFF, MP4, MOV, WAV or FLAC"
    if "special file" in e or "not a regular file" in e:
        return "not a regular file (device, pipe or socket): remove it from the delivery"
    return "unreadable file: re-export (or re-transfer) it and scan again"


def next_step(r: Mapping[str, Any], project: str = "") -> str:
    """The next step for one asset record: its most severe finding's action, or why it needs none."""
    verdict = _s(r.get("verdict"))
    if verdict == "error":
        return error_action(r.get("error"))
    findings = [f for f in r.get("findings") or [] if isinstance(f, Mapping)] if isinstance(
        r.get("findings"), list) else []
    if verdict in ("block", "review"):
        ranked = sorted(findings, key=lambda f: {"block": 0, "review": 1}.get(_s(f.get("level")), 2))
        if ranked:
            action = finding_action(ranked[0], project, r.get("media_type"))
            more = sum(1 for f in ranked[1:] if f.get("level") in ("block", "review"))
            return action + (f" (and {more} more match{'es' if more > 1 else ''})" if more else "")
        return "flagged without findings: re-run the scan and inspect results.jsonl"
    if verdict == "pass" and findings:
        return "no action: every match is cleared or consented (records below)"
    return ""
