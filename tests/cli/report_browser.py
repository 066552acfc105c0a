"""The eval HTML report in a real browser (ctest report_browser; labels browser, cli).

usage: report_browser.py OFFSIM_BINARY SOURCE_DIR WORK_DIRECTORY [CHROMIUM]

Runs `offsim eval --html` on the default suite, opens the file in headless Chromium (Debian's
/usr/bin/chromium, no network: the page must need none) and reads back what the page recorded about
itself on <body>: data-offsim-report ("ok" only when every chart embedded, drew data marks, and no script
raised an error, rejected a promise or logged a console error or warning), data-offsim-charts
("drawn/total") and data-offsim-problems. Then takes a screenshot (WORK_DIRECTORY/report.png) and checks
that it is not blank. Where this build's `offsim replay` has --html, the same checks on a replay report of
a simulated run exported with --export-snapshot. Exits 0, 77 when Chromium is absent (ctest SKIP_RETURN_CODE), or raises.
"""
import html
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=120000"]


def chromium(binary, *args):
    with tempfile.TemporaryDirectory(prefix="offsim-chromium-") as profile:
        result = subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                                capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, (args, result.returncode, result.stderr[-3000:])
    return result.stdout


def png_ink(path):
    """Fraction of pixels that are not near-white, from the PNG's own bytes (8-bit RGB/RGBA)."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
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
    previous = bytearray(stride)
    ink = 0
    for y in range(height):
        filter_type = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - channels] if i >= channels else 0
            b = previous[i]
            c = previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + a) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + b) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif filter_type == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        for x in range(0, stride, channels * 4):  # every 4th pixel is plenty
            if min(line[x:x + 3]) < 200:
                ink += 1
        previous = line
    return ink / max(1, (width // 4) * height)


def check_page(browser, report):
    """Opens `report` and returns (drawn, total) from what the page recorded about itself."""
    dom = chromium(browser, "--dump-dom", "file://" + os.path.abspath(report))
    body = re.search(r"<body(\s[^>]*data-offsim-report=[^>]*)>", dom)  # not a "<body>" inside inlined JS
    assert body, dom[:2000]
    attributes = {k: html.unescape(v) for k, v in re.findall(r'(data-offsim-[a-z]+)="([^"]*)"', body.group(1))}
    problems = attributes.get("data-offsim-problems", "")
    assert attributes.get("data-offsim-report") == "ok", (report, attributes.get("data-offsim-report"), problems[:3000])
    drawn, total = (int(x) for x in attributes["data-offsim-charts"].split("/"))
    with open(report, encoding="utf-8") as f:
        charts = f.read().count('<div class="chart" id="chart-')
    assert drawn == total == charts and total > 0, (report, drawn, total, charts)
    return drawn, total


def main():
    offsim, source, work = sys.argv[1:4]
    browser = sys.argv[4] if len(sys.argv) > 4 else "/usr/bin/chromium"
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        print(f"SKIP: {browser} not found (Debian package chromium); the browser test needs it")
        return 77
    os.makedirs(work, exist_ok=True)
    report = os.path.join(work, "report.html")
    result = subprocess.run([offsim, "eval", "--quiet", "--root", source, "--suite", "scenarios/default", "--html", report],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    with open(report, encoding="utf-8") as f:
        page = f.read()
    charts = page.count('<div class="chart" id="chart-')
    runs = page.count('<h3 id="run-')
    assert charts >= runs + 2, (charts, runs)  # the matrix, an overview per scenario, a timeline per run
    assert "http://" not in re.sub(r"<script>.*?</script>", "", page, flags=re.S).replace("http://www.w3.org", ""), \
        "the page refers to the network outside its inlined libraries"

    drawn, total = check_page(browser, report)

    # The replay report, where this build's `offsim replay` writes one: a simulated run exported as a
    # memory snapshot, replayed.
    replay_help = subprocess.run([offsim, "replay", "--help"], capture_output=True, text=True, check=False).stdout
    replayed = ""
    if "--html" in replay_help:
        trace = os.path.join(work, "run.pickle")
        run_report = os.path.join(work, "replay.html")
        subprocess.run([offsim, "eval", "--quiet", "--no-min-capacity", "--root", source, "--policy", "invokeai@a6724695",
                        "--suite", "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", "--export-snapshot", trace],
                       check=True, capture_output=True, timeout=600)
        result = subprocess.run([offsim, "replay", trace, "--quiet", "--html", run_report], capture_output=True, text=True,
                                timeout=600, check=False)
        assert result.returncode == 0 and os.path.exists(run_report), (result.returncode, result.stderr[-2000:])
        replay_drawn, _ = check_page(browser, run_report)
        replayed = f"; replay report {replay_drawn} charts"

    # The calibrate report (docs/calibration.md) on the published Qwen-Image grids.
    calibration = os.path.join(work, "calibration.html")
    subprocess.run([offsim, "calibrate", "--quiet", "--root", source, "--model", "qwen_image", "--html", calibration],
                   check=True, capture_output=True, timeout=600)
    calibrated, _ = check_page(browser, calibration)
    replayed += f"; calibrate report {calibrated} charts"

    screenshot = os.path.join(work, "report.png")
    if os.path.exists(screenshot):
        os.remove(screenshot)
    chromium(browser, f"--screenshot={screenshot}", "--window-size=1360,2400", "file://" + os.path.abspath(report))
    ink = png_ink(screenshot)
    assert ink > 0.05, f"the screenshot is nearly blank ({ink:.3f} of pixels drawn)"
    print(f"report_browser: {drawn}/{total} charts drawn with no JavaScript problem; {runs} runs; "
          f"screenshot {screenshot} ({ink:.0%} ink){replayed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
