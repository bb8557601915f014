"""Reporting an audit to people: the summary table for stderr and the HTML report.

The HTML report (``--report report.html``) is one self-contained file, the page to open after a
CI failure: inline CSS, thumbnails as base64 JPEG data URIs, the gate's verdict and rules at the
top, one section per check with a card per finding (score against threshold), duplicate groups
and leaks side by side with the suggested keeper marked. Sections show at most
:data:`MAX_CARDS` findings or :data:`MAX_GROUPS` groups (the records hold them all). It is written
atomically.
"""

from __future__ import annotations

import base64
import html
import json
import re
from collections.abc import Callable
from typing import NamedTuple

#: Longest side of a thumbnail, in pixels.
THUMBNAIL_SIDE = 160
#: JPEG quality of thumbnails.
THUMBNAIL_QUALITY = 80
#: Findings shown per section, and duplicate groups per section.
MAX_CARDS = 300
MAX_GROUPS = 150

#: One line per check, for people.
CHECK_ABOUT = {
    "corrupt": "Files that cannot be decoded (truncated, empty, not an image).",
    "dark": "Even the brightest 1% of pixels are dim (99th percentile brightness under the threshold).",
    "light": "Washed out or blown out: the darkest 5% of pixels near white, the median near white, "
             "or a quarter of the image clipped to white.",
    "blurry": "Few edges on a 64-pixel thumbnail (CleanVision), or soft at full resolution (sharpness).",
    "low_information": "Little variety in pixel values (entropy under 3 bits by default).",
    "grayscale": "No colour: a single-channel file, or R, G and B equal everywhere.",
    "odd_size": "Size far from the rest of the folder: outside its Tukey fences of sqrt(area), or 4x off its median.",
    "odd_aspect_ratio": "Very elongated (min(w/h, h/w) under the threshold).",
    "exact_duplicates": "Files with the same pixels. The suggested keeper is outlined.",
    "near_duplicates": "Files that look the same (perceptual hash or CNN embedding). The suggested keeper is outlined.",
    "leaks": "Audited files that also appear (exactly or nearly) in the --against set.",
    "label_issues": "Likely mislabelled: out-of-sample predictions disagree with the folder's label (cleanlab).",
    "class_imbalance": "Classes much smaller than the largest one.",
}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 24px 48px;color:#222;background:#fafafa}
h1{margin:20px 0 4px}h2{margin:28px 0 4px;border-bottom:1px solid #ddd;padding-bottom:4px}
.about{color:#555;margin:4px 0 12px}.passed{color:#17692b;font-weight:600}.failed{color:#b00020;font-weight:600}
.caveat{background:#fff4d6;border:1px solid #e0b84c;padding:8px 12px;border-radius:4px}
.note{background:#eef4fb;border:1px solid #9cb8d8;padding:8px 12px;border-radius:4px}
section.gate-failed{border-left:4px solid #b00020;padding-left:12px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
td.n{text-align:right}tr.tripped td{background:#fde8ea}td.file{overflow-wrap:normal;word-break:normal}
.bar{display:inline-block;height:10px;background:#5b8bd0}
.grid,.row{display:flex;flex-wrap:wrap;gap:10px}.row{flex-wrap:nowrap;overflow-x:auto;padding-bottom:6px}
figure{margin:0;min-width:160px;max-width:320px;width:min-content;background:#fff;border:1px solid #ddd;
border-radius:4px;padding:5px;flex:none}
figure.keeper{border:3px solid #17692b;padding:3px}figure.other{border-style:dashed}
figure img{display:block;max-width:160px;max-height:160px;margin:0 auto}
figure img.enlarged{image-rendering:pixelated;image-rendering:crisp-edges;image-rendering:pixelated}
.noimg{width:160px;height:90px;display:flex;align-items:center;justify-content:center;background:#eee;color:#777}
figcaption{font-size:12px;overflow-wrap:normal;word-break:normal;hyphens:none;margin-top:4px;min-width:160px}
.long{overflow-wrap:anywhere}.score{color:#555}
.group{margin:10px 0 16px}.group h3{font-size:13px;margin:0 0 4px;color:#444}
.arrow{align-self:center;font-size:22px;color:#888}nav{margin:12px 0}nav a{margin-right:10px}
nav a.failed{color:#b00020}
pre{background:#fff;border:1px solid #ddd;padding:8px}
"""


def summary_lines(result) -> list[str]:
    """The stderr summary: counts per check against thresholds, then the gate's verdict.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = {"images": 2, "readable": 2, "measured": 2, "from_cache": 0, "seconds": 0.1, "counts": {"corrupt": 0},
    ...      "thresholds": {}, "rules": [{"rule": "corrupt", "count": 0, "tripped": False}], "gate": "passed",
    ...      "groups": {}}
    >>> summary_lines(SimpleNamespace(summary=s))[-1]
    'gate: passed'
    """
    s = result.summary
    total = max(1, s["images"])
    lines = [f"audit: {s['images']} files ({s['images'] - s['readable']} unreadable) in {s['seconds']:.1f} s; "
             f"{s['measured']} measured, {s['from_cache']} from cache"]
    rows = [("check", "found", "share", "threshold")]
    for check, count in s["counts"].items():
        rows.append((check, str(count), f"{100.0 * count / total:.1f}%", _threshold_text(check, s)))
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    for r in rows:
        lines.append("  ".join([r[0].ljust(widths[0]), r[1].rjust(widths[1]), r[2].rjust(widths[2]), r[3]]).rstrip())
    if s.get("classes"):
        lines.append("classes: " + ", ".join(f"{c} {n}" for c, n in s["classes"].items()))
    lines += [f"note: {n}" for n in s.get("notes", ())]  # caveats are warnings: the CLI says them
    tripped = [r for r in s["rules"] if r["tripped"]]
    if tripped:
        lines.append("gate: FAILED by " + "; ".join(f"{r['rule']} (found {r['count']})" for r in tripped))
    else:
        lines.append("gate: passed")
    return lines


def _threshold_text(check: str, summary: dict) -> str:
    t = summary["thresholds"]
    groups = summary.get("groups", {})
    if check in ("near_duplicates", "leaks"):
        if t.get("dedup") == "cnn":
            text = f"cosine similarity >= {t.get('min_similarity')}"
        else:
            text = f"{t.get('dedup')} distance <= {t.get('max_distance')}"
        return text + _groups_text(groups.get(check))
    if check == "exact_duplicates":
        return "same pixels" + _groups_text(groups.get(check))
    extra = {"light": ("light_median", "light_clipped"), "blurry": ("blurry_sharpness",)}
    if check == "odd_size":
        return f"outside Tukey fences x{t.get('odd_size_iqr')} or size ratio < {t.get('odd_size_ratio')}"
    if check in t:
        text = f"score < {t[check]}"
        for name in extra.get(check, ()):
            text += f" or {name} < {t[name]}"
        if check == "blurry" and t.get("blurry_sharpness") and t.get("blurry_relative"):
            text += f" and < {t['blurry_relative']} x that of look-alikes"
        return text
    if check == "class_imbalance" and "class_imbalance" in t:
        return f"size / largest < {t['class_imbalance']}"
    return "-"


def _groups_text(n: int | None) -> str:
    return "" if n is None else f"; {n} group{'' if n == 1 else 's'}"


# --- HTML --------------------------------------------------------------------------------

class Thumbnail(NamedTuple):
    """A thumbnail as a data URI, with its size in pixels."""

    uri: str
    width: int
    height: int


def render_html(result, *, thumbnail: Callable[[str], Thumbnail | None] | None = None,
                title: str = "cnntool audit") -> str:
    """The report as one HTML string.

    The page reads top down in the order a person acts: the verdict, any caveat (random
    weights...) and dataset note, the gate's rules, then the sections of the checks that failed
    the gate, then the counts and every other section. Thumbnails of small images are enlarged
    by a whole factor without smoothing (``image-rendering: pixelated``); file names break only
    at path separators, ``_`` and ``-``.

    Parameters
    ----------
    result : AuditResult
    thumbnail : callable, optional
        path -> :class:`Thumbnail` (or None when it cannot be shown); default: :func:`make_thumbnail`.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> s = {"path": "data", "images": 1, "readable": 1, "counts": {"corrupt": 0, "dark": 1}, "thresholds": {"dark": 0.32},
    ...      "rules": [{"rule": "dark", "count": 1, "tripped": True}], "gate": "failed", "caveats": ["random weights"]}
    >>> r = {"path": "data/a_b.png", "check": "dark", "score": 0.1, "threshold": 0.32, "detail": ""}
    >>> page = render_html(SimpleNamespace(summary=s, records=[r]), thumbnail=lambda p: None)
    >>> page.index("random weights") < page.index("<section id='dark' class='gate-failed'>")
    True
    >>> "data/<wbr>a_<wbr>b.png" in page
    True
    """
    thumbnail = thumbnail or make_thumbnail
    s = result.summary
    by_check: dict[str, list[dict]] = {}
    for record in result.records:
        by_check.setdefault(record["check"], []).append(record)
    failing = _failing_checks(s, by_check)
    order = [c for c in by_check if c in failing] + [c for c in by_check if c not in failing]
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}: {_e(s['path'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p class=verdict>{_e(s['path'])} &middot; {s['images']} files, {s['readable']} readable &middot; gate: "
        f"<span class={s['gate']}>{s['gate'].upper()}</span>"
        + (f" by {', '.join(_e(c) for c in failing)}" if failing else "") + "</p>",
    ]
    for caveat in s.get("caveats", ()):
        parts.append(f"<p class=caveat><b>Caveat:</b> {_e(caveat)}</p>")
    for note in s.get("notes", ()):
        parts.append(f"<p class=note><b>Note:</b> {_e(note)}</p>")
    moved = s.get("quarantine")
    if moved:
        parts.append(f"<p class=note><b>Quarantine:</b> {moved['moved']} files moved to {_e(moved['folder'])}"
                     + (f"; undo with <code>cnntool audit --restore {_e(moved['manifest'])}</code>"
                        if moved.get("manifest") else "")
                     + (f"; {moved['failed']} could not be moved" if moved.get("failed") else "") + "</p>")
    parts.append(_rules_table(s))
    if order:
        links = "".join(f"<a href='#{c}'{' class=failed' if c in failing else ''}>{_e(c)} ({len(by_check[c])})</a>"
                        for c in order)
        parts.append(f"<nav>{links}</nav>")
    sections = []
    for check in order:
        records = by_check[check]
        mark = " class='gate-failed'" if check in failing else ""
        flag = " <span class=failed>failed the gate</span>" if check in failing else ""
        sections.append(f"<section id='{check}'{mark}><h2>{_e(check)} ({len(records)}){flag}</h2>"
                        f"<p class=about>{_e(CHECK_ABOUT.get(check, ''))}</p>"
                        + (_classes_table(s) if check in ("label_issues", "class_imbalance") else "")
                        + _section(check, records, thumbnail) + "</section>")
    first_other = sum(1 for c in order if c in failing)
    parts += sections[:first_other]
    parts.append("<h2>Counts</h2>" + _summary_table(s, by_check))
    if s.get("classes") and not {"label_issues", "class_imbalance"} & set(by_check):
        parts.append("<h2>Classes</h2>" + _classes_table(s))
    parts += sections[first_other:]
    parts.append("<h2>Effective thresholds</h2><pre>" + _e(json.dumps(s["thresholds"], indent=2)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _failing_checks(s: dict, by_check: dict) -> list[str]:
    """Checks with findings whose rule tripped (``any`` counts for every check with findings)."""
    tripped = {r["rule"].split(">")[0].strip().lower() for r in s["rules"] if r["tripped"]}
    if "any" in tripped:
        return list(by_check)
    return [c for c in by_check if c in tripped]


def write_html_report(path, result, *, max_pixels: int | None = None, workers: int = 2,
                      locate: dict[str, str] | None = None) -> None:
    """Render thumbnails (in parallel) and write the report atomically; ``locate`` maps a
    record's path to where the file is now (after ``--quarantine``)."""
    locate = locate or {}
    from cnntool.data.loaders import thread_map
    from cnntool.data.writers import atomic_write_text

    wanted: list[str] = []
    for record in result.records:
        for p in [record["path"], *(record.get("matches") or [])[:8]]:
            if record["check"] not in ("corrupt", "class_imbalance") and p not in wanted:
                wanted.append(p)
    thumbs = dict(zip(wanted, thread_map(lambda p: make_thumbnail(locate.get(p, p), max_pixels=max_pixels), wanted,
                                         workers=workers)))
    atomic_write_text(path, render_html(result, thumbnail=lambda p: thumbs.get(p)))


def make_thumbnail(path: str, *, max_pixels: int | None = None, side: int = THUMBNAIL_SIDE) -> Thumbnail | None:
    """The image shrunk to fit ``side`` pixels (a JPEG data URI), or, when it is smaller than
    half of that, at its own pixels (PNG) for the page to enlarge; None when it cannot be read."""
    import cv2

    from cnntool.data.decode import decode_image
    from cnntool.data.writers import encode_image
    from cnntool.errors import InputError

    try:
        image = decode_image(path, max_pixels=max_pixels)
    except InputError:
        return None
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    h, w = image.shape[:2]
    if max(h, w) <= side // 2:
        return Thumbnail("data:image/png;base64," + base64.b64encode(encode_image(image, ".png")).decode("ascii"), w, h)
    data = encode_image(image, ".jpg", quality=THUMBNAIL_QUALITY)
    return Thumbnail("data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"), w, h)


def _e(value) -> str:
    return html.escape(str(value), quote=True)


_BREAK_AFTER = re.compile(r"([/\\_\-])")
#: A name part longer than this (no separator in it) may break anywhere rather than overflow.
_LONGEST_PART = 40


def _name(path: str) -> str:
    """A file name for a caption: breaks allowed after path separators, ``_`` and ``-`` only."""
    pieces = []
    for piece in _BREAK_AFTER.split(str(path)):
        text = _e(piece)
        pieces.append(f"<span class=long>{text}</span>" if len(piece) > _LONGEST_PART else text)
        if _BREAK_AFTER.fullmatch(piece or " "):
            pieces.append("<wbr>")
    return "".join(pieces)


def _summary_table(s: dict, by_check: dict) -> str:
    total = max(1, s["images"])
    def name(check: str) -> str:  # a link to the check's section, when it has one
        return f"<a href='#{check}'>{_e(check)}</a>" if check in by_check else _e(check)

    rows = "".join(
        f"<tr><td>{name(c)}</td><td class=n>{n}</td><td class=n>{100.0 * n / total:.1f}%</td>"
        f"<td>{_e(_threshold_text(c, s))}</td></tr>"
        for c, n in s["counts"].items())
    return f"<table><tr><th>check</th><th>found</th><th>share</th><th>threshold</th></tr>{rows}</table>"


def _classes_table(s: dict) -> str:
    classes = s.get("classes") or {}
    if not classes:
        return ""
    largest = max(classes.values()) or 1
    total = sum(classes.values()) or 1
    rows = "".join(f"<tr><td>{_e(c)}</td><td class=n>{n}</td><td class=n>{100.0 * n / total:.1f}%</td>"
                   f"<td><span class=bar style='width:{round(120 * n / largest)}px'></span></td></tr>"
                   for c, n in classes.items())
    return (f"<table class=classes><tr><th>class</th><th>images</th><th>share</th><th></th></tr>{rows}"
            f"<tr><td><b>all</b></td><td class=n><b>{sum(classes.values())}</b></td><td></td><td></td></tr></table>")


def _rules_table(s: dict) -> str:
    rows = "".join(
        f"<tr class={'tripped' if r['tripped'] else 'ok'}>"
        f"<td>{_e(r['rule'])}{' (implicit)' if r.get('implicit') else ''}</td>"
        f"<td class=n>{r['count']}</td><td>{'TRIPPED' if r['tripped'] else 'ok'}</td></tr>"
        for r in s["rules"])
    return f"<h2>Gate</h2><table><tr><th>--fail-on rule</th><th>found</th><th>result</th></tr>{rows}</table>"


def _section(check: str, records: list[dict], thumbnail) -> str:
    if check == "corrupt":
        rows = "".join(f"<tr><td class=file>{_name(r['path'])}</td><td>{_e(r['error'])}</td></tr>" for r in records)
        return f"<table><tr><th>file</th><th>why it cannot be read</th></tr>{rows}</table>"
    if check == "class_imbalance":
        rows = "".join(f"<tr><td class=file>{_name(r['path'])}</td><td class=n>{r.get('count')}</td>"
                       f"<td>{_e(r['detail'])}</td></tr>" for r in records)
        return f"<table><tr><th>class folder</th><th>images</th><th></th></tr>{rows}</table>"
    if check in ("exact_duplicates", "near_duplicates"):
        return _groups(records, thumbnail)
    if check == "leaks":
        return _leaks(records, thumbnail)
    cards = [_card(r["path"], thumbnail, _score_line(r), r.get("detail", "")) for r in records[:MAX_CARDS]]
    return "<div class=grid>" + "".join(cards) + "</div>" + _more(len(records) - MAX_CARDS, "findings")


def _groups(records: list[dict], thumbnail) -> str:
    groups: dict[int, list[dict]] = {}
    for r in records:
        groups.setdefault(r["group"], []).append(r)
    out = []
    for number, members in list(groups.items())[:MAX_GROUPS]:
        cards = "".join(_card(m["path"], thumbnail, "keep" if m["path"] == m["keeper"] else f"distance {m['score']:g}",
                              m["detail"] if m["path"] != m["keeper"] else "", keeper=m["path"] == m["keeper"])
                        for m in members)
        out.append(f"<div class=group><h3>group {number} ({len(members)} files)</h3><div class=row>{cards}</div></div>")
    return "".join(out) + _more(len(groups) - MAX_GROUPS, "groups")


def _leaks(records: list[dict], thumbnail) -> str:
    out = []
    for r in records[:MAX_GROUPS]:
        matches = r.get("matches") or []
        others = "".join(_card(m, thumbnail, "in the --against set", "", other=True) for m in matches[:8])
        mine = _card(r["path"], thumbnail, f"distance {r['score']:g}", "")
        out.append(f"<div class=group><h3>{_e(r['detail'])}</h3><div class=row>"
                   f"{mine}<span class=arrow>&harr;</span>{others}</div></div>")
    return "".join(out) + _more(len(records) - MAX_GROUPS, "leaks")


def _score_line(r: dict) -> str:
    if r.get("score") is None:
        return ""
    if r.get("threshold") is None:
        return f"score {r['score']:.3g}"
    return f"score {r['score']:.3g} &lt; {r['threshold']:g}"


def _card(path: str, thumbnail, score: str, detail: str, *, keeper: bool = False, other: bool = False) -> str:
    thumb = thumbnail(path)
    if thumb is None:
        image = "<div class=noimg>no preview</div>"
    else:
        uri, w, h = thumb if isinstance(thumb, tuple) else (thumb, 0, 0)
        factor = max(1, THUMBNAIL_SIDE // max(w, h, 1)) if w else 1
        size = f" width={w * factor} height={h * factor}" if w else ""
        image = f"<img src='{uri}'{size}{' class=enlarged' if factor > 1 else ''} alt=''>"
    cls = " class=keeper" if keeper else " class=other" if other else ""
    return (f"<figure{cls} title='{_e(path)}'>{image}<figcaption>{_name(path)}<br><span class=score>{score}</span>"
            f"{'<br>' + _e(detail) if detail else ''}</figcaption></figure>")


def _more(n: int, what: str) -> str:
    return f"<p class=about>{n} more {what} not shown: see the records.</p>" if n > 0 else ""
