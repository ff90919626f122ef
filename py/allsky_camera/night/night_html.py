"""The night's static web page, ``index.html``.

Plain HTML with relative links only (the pictures and each frame's
checkplots beside it in the output directory), so it works opened from disk
with no server and no network.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

#: File name of the page.
INDEX_NAME = "index.html"
#: Summary columns shown in the page's table, with their headings.
TABLE_COLUMNS = (("file", "file"), ("date_obs", "UTC"), ("status", "status"),
                 ("sun_alt", "Sun alt"), ("moon_alt", "Moon alt"), ("zp_total", "ZP"),
                 ("clear_fraction", "clear"), ("sb_zenith", "sky (zenith)"),
                 ("n_stars", "stars"), ("ast_rms", "ast rms"), ("dzenx", "dzenx"),
                 ("dzeny", "dzeny"), ("drot", "drot"), ("message", "why"))
#: Per-frame checkplots linked from the table (product kinds, see products.py).
CHECKPLOTS = ("zp", "quiver", "sbmap", "transp", "detrended_png")
#: The nightly pictures, with their captions.
PICTURES = (("night-summary.png", "Night summary against time"),
            ("night-keogram.png", "Keogram along the north-south meridian"),
            ("night-clouds.png", "Clear sky by sky cell"))

_STYLE = """body{font-family:sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;font-size:0.85em}
td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}
td.t{text-align:left}tr.failed{background:#fdd}tr.degraded{background:#ffd}
img{max-width:100%;border:1px solid #ccc}"""


#: Once the page has loaded, it records on <body> how many pictures loaded
#: (``data-pictures="loaded/total"``), for a browser test or a curious user.
_CHECK_SCRIPT = ("window.addEventListener('load',function(){var i=document.images,n=0;"
                 "for(var k=0;k<i.length;k++){if(i[k].complete&&i[k].naturalWidth>0)n++;}"
                 "document.body.setAttribute('data-pictures',n+'/'+i.length);});")


def _cell(value):
    if isinstance(value, float):
        return "" if not math.isfinite(value) else f"{value:.3f}"
    return html.escape(str(value))


def page(table, results, outdir):
    """The page's HTML text.

    Parameters
    ----------
    table : astropy.table.Table
        The night summary (sorted by time).
    results : list of dict
        The frames' results (their ``products`` list the files written).
    outdir : path
        Where the page goes (pictures are linked only if present).
    """
    from allsky_camera.night.nightsum import counts
    from allsky_camera.output.products import _NAMES

    outdir = Path(outdir)
    products = {r["row"]["file"]: set(r["products"]) for r in results}
    rows = [dict(zip(table.colnames, (r[c] for c in table.colnames))) for r in table]
    c = counts([{"status": str(r["status"])} for r in rows])
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
           "<title>All-sky camera night</title>", f"<style>{_STYLE}</style></head><body>",
           "<h1>All-sky camera night</h1>",
           f"<p id='counts'>{len(rows)} frames: {c['ok']} ok, {c['degraded']} degraded, "
           f"{c['failed']} failed. Summary table: <a href='night-summary.csv'>CSV</a>, "
           "<a href='night-summary.fits'>FITS</a>.</p>"]
    for name, caption in PICTURES:
        if (outdir / name).exists():
            out.append(f"<figure><img src='{name}' alt='{html.escape(caption)}'>"
                       f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    out.append("<h2>Frames</h2><table id='frames'><tr>"
               + "".join(f"<th>{h}</th>" for _, h in TABLE_COLUMNS) + "<th>checkplots</th></tr>")
    for r in rows:
        status = str(r["status"])
        tds = []
        for col, _ in TABLE_COLUMNS:
            v = r[col]
            v = float(v) if hasattr(v, "dtype") and v.dtype.kind == "f" else v
            cls = " class='t'" if col in ("file", "date_obs", "status", "message") else ""
            tds.append(f"<td{cls}>{_cell(v)}</td>")
        stem_files = products.get(str(r["file"]), set())
        links = []
        for kind in CHECKPLOTS:
            suffix, ext = _NAMES[kind]
            hits = [f for f in stem_files if f.endswith(f"-{suffix}.{ext}")]
            links += [f"<a href='{html.escape(f)}'>{suffix}</a>" for f in hits]
        tds.append(f"<td class='t'>{' '.join(links)}</td>")
        out.append(f"<tr class='{status}'>" + "".join(tds) + "</tr>")
    out.append(f"</table><script>{_CHECK_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


def write_index(table, results, outdir):
    """Write ``index.html`` atomically; returns its path."""
    from allsky_camera.stages import io
    path = Path(outdir) / INDEX_NAME
    with io.atomic_path(path) as tmp:
        tmp.write_text(page(table, results, outdir), encoding="utf-8")
    return path
