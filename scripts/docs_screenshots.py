#!/usr/bin/python3
"""Regenerates the report screenshots in docs/img from the current build, with headless Chromium.

usage: scripts/docs_screenshots.py [OFFSIM_BINARY] [CHROMIUM]
       (defaults: build/release/cli/offsim, /usr/bin/chromium; run from the checkout's root)

docs/img/eval-report.png: `offsim eval --html` on the default suite with every policy, the top of the page
(summary, verdict matrix) and the InvokeAI #9305 W7900 scenario's overview and pre-fix timeline.
docs/img/eval-report-estimators.png: the estimator panels of the two InvokeAI #9305 scenarios, every policy.
Each is the real page drawn in a 1400 px window, other sections hidden, cropped to the page's content.
Takes about a minute; not run by the tests (the browser test checks the same pages).
"""
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=120000"]
WIDTH = 1400
CONTENT = (60, 1340)  # the page's body (max-width 1280 px) in a 1400 px window

# Shows only the sections listed (each: an element, and its following siblings up to and including the
# `through`-th chart after it), in page order.
SHOW = """<script>
document.addEventListener('DOMContentLoaded', function () {
  var sections = %s;
  var keep = new Set();
  sections.forEach(function (s) {
    var start = s.id ? document.getElementById(s.id)
                     : Array.from(document.querySelectorAll(s.tag)).find(function (e) { return e.textContent.indexOf(s.text) === 0; });
    if (!start) throw new Error('no section ' + JSON.stringify(s));
    var charts = 0;
    for (var e = start; e; e = e.nextElementSibling) {
      keep.add(e);
      if (e.classList.contains('chart') && ++charts >= s.through) break;
      if (s.through === 0 && e !== start && /^H[123]$/.test(e.tagName)) { keep.delete(e); break; }
    }
  });
  Array.from(document.body.children).forEach(function (e) {
    if (e.tagName !== 'SCRIPT' && !keep.has(e)) e.style.display = 'none';
  });
});
</script>"""


def read_png(path):
    with open(path, "rb") as f:
        data = f.read()
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line[x] for x in range(stride) if x % channels < 3) if channels == 4 else bytes(line))
        previous = line
    return width, rows


def write_png(path, width, rows):
    """8-bit RGB; each row filtered with Up (the screenshots are mostly rows like the one above)."""
    raw, previous = bytearray(), bytes(width * 3)
    for row in rows:
        raw.append(2)
        raw.extend((x - p) & 0xFF for x, p in zip(row, previous))
        previous = row
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(bytes(raw), 9)) + chunk(b"IEND", b""))


def screenshot(chromium, report, sections, path, height):
    with open(report, encoding="utf-8") as f:
        page = f.read()
    body = page.index(">", page.index("<body data-offsim-report")) + 1
    with tempfile.TemporaryDirectory(prefix="offsim-shot-") as work:
        shown = os.path.join(work, "page.html")
        with open(shown, "w", encoding="utf-8") as f:
            f.write(page[:body] + SHOW % repr(sections).replace("'", '"').replace("True", "true") + page[body:])
        png = os.path.join(work, "shot.png")
        subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={work}/profile", f"--screenshot={png}",
                        f"--window-size={WIDTH},{height}", "file://" + shown], check=True, capture_output=True, timeout=600)
        width, rows = read_png(png)
    # The page's content box, down to the last row with anything drawn, plus a margin.
    left, right = CONTENT
    rows = [row[left * 3:right * 3] for row in rows]
    last = max(y for y, row in enumerate(rows) if min(row) < 235)
    write_png(path, right - left, rows[:min(len(rows), last + 16)])
    print(f"wrote {path}: {right - left} x {min(len(rows), last + 16)} px")


def main():
    offsim = sys.argv[1] if len(sys.argv) > 1 else "build/release/cli/offsim"
    chromium = sys.argv[2] if len(sys.argv) > 2 else "/usr/bin/chromium"
    if not shutil.which(chromium):
        sys.exit(f"{chromium} not found (Debian package chromium)")
    with tempfile.TemporaryDirectory(prefix="offsim-docs-img-") as work:
        full = os.path.join(work, "default.html")
        subprocess.run([offsim, "eval", "--quiet", "--html", full], check=True, stdout=subprocess.DEVNULL)
        scenario, run = "scenario-qwen-edit-2511-q8-decode-w7900-rocm", "invokeai@fda7c42b on qwen-edit-2511-q8-decode-w7900-rocm"
        screenshot(chromium, full, [{"tag": "h1", "text": "offsim eval report", "through": 0},
                                    {"id": "verdicts", "through": 1},
                                    {"id": scenario, "through": 1},
                                    {"tag": "h3", "text": run, "through": 1}],
                   "docs/img/eval-report.png", 3200)
        seed = os.path.join(work, "seed.html")
        subprocess.run([offsim, "eval", "--quiet", "--no-min-capacity", "--html", seed,
                        "--suite", "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json",
                        "--suite", "scenarios/default/invokeai-9305-qwen-edit-q8-cuda.json"], check=True, stdout=subprocess.DEVNULL)
        screenshot(chromium, seed, [{"id": "estimators", "through": 1}], "docs/img/eval-report-estimators.png", 3200)


if __name__ == "__main__":
    main()
