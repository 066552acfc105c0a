"""The HTML reports in a real browser (ctest report_browser; labels browser, cli).

usage: report_browser.py OFFSIM_BINARY SOURCE_DIR WORK_DIRECTORY [CHROMIUM]

Runs `offsim eval --html` on the default suite, `offsim calibrate --html` on the Qwen-Image grids and
`offsim replay --html` on two traces (a simulated run exported as a snapshot; a requests-only CPU recording
replayed on a device too small for it), opens each
page in headless Chromium (Debian's /usr/bin/chromium, no network: the page must need none) in a window
1400 px wide, and reads back what the page recorded about itself on <body>: data-offsim-report ("ok" only
when every chart embedded, drew data marks, and no script raised an error, rejected a promise or logged a
console error or warning), data-offsim-charts ("drawn/total") and data-offsim-problems. A copy of each page
carries report_layout.js, which measures what a reader sees in every chart; the test fails on a chart
wider than the page, text Vega cut short with an ellipsis, axis labels that touch, texts that overlap, legend entries that look
alike, an estimator panel without a true peak or without x labels of its own, a verdict grid that does not
name every scenario and policy in full, a reserved-memory chart of ten policies or fewer or with a colour
used twice, a timeline of thousands of allocator calls without ticks, and a replay that prints a
percentage of nothing or stops at an OOM without its segment map. The default report's size must be within
15% of what docs/reports.md says (checked with or without Chromium). Then takes screenshots
(WORK_DIRECTORY/report.png, replay-oom.png) and checks that they are not blank. Exits 0, 77 when Chromium
is absent (ctest SKIP_RETURN_CODE), or raises.
"""
import html
import json
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


LAYOUT_PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "report_layout.js")
WINDOW = "--window-size=1400,1000"  # the narrowest desktop window the report is meant to fit


def check_page(browser, report, work):
    """Opens a copy of `report` with the layout probe; checks what the page recorded about itself and
    returns (drawn, total, layout)."""
    with open(report, encoding="utf-8") as f:
        page = f.read()
    with open(LAYOUT_PROBE, encoding="utf-8") as f:
        probe = f.read()
    body_open = page.index("<body data-offsim-report")
    body_open = page.index(">", body_open) + 1
    probed = os.path.join(work, "probed-" + os.path.basename(report))
    with open(probed, "w", encoding="utf-8") as f:
        f.write(page[:body_open] + "<script>" + probe + "</script>" + page[body_open:])
    dom = chromium(browser, WINDOW, "--dump-dom", "file://" + os.path.abspath(probed))
    os.remove(probed)
    body = re.search(r"<body(\s[^>]*data-offsim-report=[^>]*)>", dom)  # not a "<body>" inside inlined JS
    assert body, dom[:2000]
    attributes = {k: html.unescape(v) for k, v in re.findall(r'(data-offsim-[a-z]+)="([^"]*)"', body.group(1))}
    problems = attributes.get("data-offsim-problems", "")
    assert attributes.get("data-offsim-report") == "ok", (report, attributes.get("data-offsim-report"), problems[:3000])
    drawn, total = (int(x) for x in attributes["data-offsim-charts"].split("/"))
    charts = page.count('<div class="chart" id="chart-')
    assert drawn == total == charts and total > 0, (report, drawn, total, charts)
    assert "data-offsim-layout" in attributes, "the layout probe recorded nothing"
    layout = json.loads(attributes["data-offsim-layout"])
    assert len(layout["charts"]) == total, (len(layout["charts"]), total)
    return drawn, total, layout


def layout_problems(layout):
    """What a reader of the page would trip over, one line per problem."""
    problems = []
    for c in layout["charts"]:
        where = f"{c['id']} ({c['name'][:90]})"
        if "error" in c:
            problems.append(f"{where}: the probe failed: {c['error']}")
            continue
        if c["right"] > c["content_right"] + 1 or c["left"] < c["content_left"] - 1:
            problems.append(f"{where}: drawn from x={c['left']:.0f} to {c['right']:.0f} px, the page's content is "
                            f"{c['content_left']:.0f}-{c['content_right']:.0f} px: cut off")
        for t in c["truncated"]:
            problems.append(f"{where}: {t['role']} cut short ({t['width']:.0f} px > limit {t['limit']}): {t['text'][:120]!r}")
        for a, b in c["overlapping_labels"]:
            problems.append(f"{where}: axis labels {a!r} and {b!r} touch")
        for a, b in c["overlapping_text"]:
            problems.append(f"{where}: texts overlap: {a[:80]!r} and {b[:80]!r}")
        for legend in c["legends"]:
            looks = [(e["colour"], e["shape"], e["dash"]) for e in legend["entries"]]
            for i, look in enumerate(looks):
                if looks.index(look) != i:
                    problems.append(f"{where}: legend {legend['title']!r}: {legend['entries'][i].get('label')!r} looks like "
                                    f"{legend['entries'][looks.index(look)].get('label')!r} ({look[0]})")
        if c["name"] == "estimators":
            for cell in c["cells"]:
                if cell["symbols"] == 0:
                    problems.append(f"{where}: panel {cell['title']!r} draws no true peak")
                if cell["axis_labels"] == 0:
                    problems.append(f"{where}: panel {cell['title']!r} has no axis labels of its own")
    return problems


def embedded_eval(page):
    """The eval JSON the page embeds (<script id="offsim-eval">)."""
    found = re.search(r'<script[^>]*id="offsim-eval"[^>]*>(.*?)</script>', page, flags=re.S)
    assert found, "the report embeds no eval JSON"
    return json.loads(found.group(1))


def written_in_full(name, texts):
    """Whether `name` is one of the chart's texts, lines joined (Vega wraps titles at a space or hyphen)."""
    return any(t.replace(" ", "") == name.replace(" ", "") for t in texts)


def eval_report_problems(layout, page):
    """Issue 20 item 18 on the default suite's report, one line per problem: the verdict grid shows every
    scenario and policy name in full; each scenario's reserved-memory chart has more than ten policies, one
    colour each, their legend names uncut; the timelines of the longest runs (a few thousand allocator
    calls) have x ticks, which must not touch (layout_problems); every estimator panel has x labels."""
    problems = []
    results = [{"scenario": r["scenario"]["name"], "policy": r["policy"]["id"], "timeline": r["timeline"],
                "timeline_stride": r["timeline_stride"],
                "applicable": not r.get("failure", "").startswith("not applicable")}  # as report/eval_report.cpp
               for r in embedded_eval(page)["results"]]
    scenarios = list(dict.fromkeys(r["scenario"] for r in results))
    policies = list(dict.fromkeys(r["policy"] for r in results))
    charts = {c["name"]: c for c in layout["charts"]}

    matrix = charts.get("verdict matrix")
    if matrix is None:
        return ["no verdict matrix chart"], ""
    for name in scenarios + policies:
        if not written_in_full(name, matrix["texts"]):
            problems.append(f"verdict matrix: {name!r} is not written in full")

    for scenario in scenarios:
        chart = charts.get(scenario + ": reserved memory of every policy")
        runs = [r["policy"] for r in results if r["scenario"] == scenario and r["applicable"]]
        if chart is None:
            problems.append(f"{scenario}: no reserved-memory chart")
            continue
        entries = [e for legend in chart["legends"] for e in legend["entries"]]
        labels = [e.get("label", "") for e in entries]
        if len(runs) <= 10 or sorted(labels) != sorted(runs):
            problems.append(f"{scenario}: the reserved-memory legend lists {labels}, the runs are {runs} (more than ten expected)")
        colours = [e["colour"] for e in entries]
        for i, colour in enumerate(colours):
            if colours.index(colour) != i:
                problems.append(f"{scenario}: {labels[i]!r} has the colour of {labels[colours.index(colour)]!r} ({colour})")

    calls = {f"{r['policy']} on {r['scenario']}: timeline": len(r["timeline"]) * r["timeline_stride"]
             for r in results if r["applicable"]}
    longest = max(calls.values())
    if longest < 2000:
        problems.append(f"the longest run has {longest} allocator calls: the suite no longer exercises a few thousand")
    for name, n in calls.items():
        chart = charts.get(name)
        if chart is None:
            problems.append(f"{name}: no timeline chart")
        elif n >= 2000 and len(chart["x_labels"]) < 4:
            problems.append(f"{name}: {n} allocator calls but {len(chart['x_labels'])} x ticks ({chart['x_labels']})")

    estimators = charts.get("estimators")
    if estimators is None or not estimators["cells"]:
        problems.append("no estimator panels")
    else:
        for cell in estimators["cells"]:
            if cell["x_axis_labels"] == 0:
                problems.append(f"estimators: panel {cell['title']!r} has no x labels of its own")
    longest_name = max(calls, key=calls.get)
    summary = (f"{len(scenarios)} scenarios and {len(policies)} policies named in full in the verdict grid; "
               f"longest run {longest} allocator calls, {len(charts.get(longest_name, {}).get('x_labels', []))} x ticks; "
               f"{len(estimators['cells']) if estimators else 0} estimator panels with x labels")
    return problems, summary


def check_documented_size(source, size):
    """docs/reports.md states the default report's size; fail when it no longer describes the file."""
    with open(os.path.join(source, "docs/reports.md"), encoding="utf-8") as f:
        stated = re.search(r"The default suite's report is about ([0-9.]+) MB", f.read())
    assert stated, "docs/reports.md no longer states the default report's size"
    documented = float(stated.group(1)) * 1e6
    assert abs(size - documented) <= 0.15 * documented, \
        f"the default report is {size / 1e6:.1f} MB; docs/reports.md says about {stated.group(1)} MB: measure it and update the doc"


def replay_report(offsim, trace, report, *args):
    result = subprocess.run([offsim, "replay", trace, "--quiet", "--html", report, *args], capture_output=True, text=True,
                            timeout=600, check=False)
    assert os.path.exists(report), (result.returncode, result.stderr[-2000:])
    return result


def screenshot(browser, report, path, height):
    if os.path.exists(path):
        os.remove(path)
    chromium(browser, f"--screenshot={path}", f"--window-size=1400,{height}", "file://" + os.path.abspath(report))
    ink = png_ink(path)
    assert ink > 0.05, f"the screenshot {path} is nearly blank ({ink:.3f} of pixels drawn)"
    return ink


def main():
    offsim, source, work = sys.argv[1:4]
    browser = sys.argv[4] if len(sys.argv) > 4 else "/usr/bin/chromium"
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
    check_documented_size(source, os.path.getsize(report))
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        print(f"SKIP: {browser} not found (Debian package chromium); the browser test needs it")
        return 77

    drawn, total, layout = check_page(browser, report, work)
    problems, eval_summary = eval_report_problems(layout, page)
    problems += layout_problems(layout)

    # Replay reports: a simulated run exported as a memory snapshot, replayed as recorded; and a requests-only
    # CPU recording (nothing recorded to compare) replayed on a device too small for it (a what-if OOM).
    trace = os.path.join(work, "run.pickle")
    subprocess.run([offsim, "eval", "--quiet", "--no-min-capacity", "--root", source, "--policy", "invokeai@a6724695",
                    "--suite", "scenarios/default/invokeai-9305-qwen-edit-q8-w7900-rocm.json", "--export-snapshot", trace],
                   check=True, capture_output=True, timeout=600)
    run_report = os.path.join(work, "replay.html")
    result = replay_report(offsim, trace, run_report)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    replay_drawn, _, replay_layout = check_page(browser, run_report, work)
    problems += layout_problems(replay_layout)

    oom_report = os.path.join(work, "replay-oom.html")
    cpu_trace = os.path.join(source, "traces/cpu/sd15-vae_decode_512x512_bf16_efficient_implicit.otrace")
    result = replay_report(offsim, cpu_trace, oom_report, "--capacity", "400MiB")
    assert "n/a (nothing recorded to compare)" in result.stdout, result.stdout[-2000:]
    oom_drawn, _, oom_layout = check_page(browser, oom_report, work)
    problems += layout_problems(oom_layout)
    with open(oom_report, encoding="utf-8") as f:
        text = re.sub(r"<script.*?</script>", "", f.read(), flags=re.S)
    fidelity = re.search(r"<h2>Fidelity</h2>\s*<p>(.*?)</p>", text, flags=re.S).group(1)
    if "n/a (nothing recorded to compare)" not in fidelity or "%" in fidelity:
        problems.append(f"replay-oom.html: a requests-only trace's fidelity should read n/a as on the terminal: {fidelity[:200]!r}")
    if not any(c["name"] == "replay: segments at the unhandled OOM" for c in oom_layout["charts"]):
        problems.append("replay-oom.html: the what-if replay stopped at an unhandled OOM and shows no segment map of it")

    # The calibrate report (docs/calibration.md) on the published Qwen-Image grids.
    calibration = os.path.join(work, "calibration.html")
    subprocess.run([offsim, "calibrate", "--quiet", "--root", source, "--model", "qwen_image", "--html", calibration],
                   check=True, capture_output=True, timeout=600)
    calibrated, _, calibration_layout = check_page(browser, calibration, work)
    problems += layout_problems(calibration_layout)

    assert not problems, f"{len(problems)} layout problem(s):\n" + "\n".join(problems[:60])

    ink = screenshot(browser, report, os.path.join(work, "report.png"), 2400)
    screenshot(browser, oom_report, os.path.join(work, "replay-oom.png"), 2800)
    print(f"report_browser: {drawn}/{total} charts drawn with no JavaScript or layout problem; {runs} runs; {eval_summary}; "
          f"screenshot {os.path.join(work, 'report.png')} ({ink:.0%} ink); replay reports {replay_drawn} and {oom_drawn} charts; calibrate report {calibrated} charts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
