#!/usr/bin/python3
"""Runs every code example of README.md and docs/ exactly as written (ctest label `docs`).

Every fenced block (```lang ... ```) of a Markdown file is one example, handled by its language tag:

  sh, bash, shell   run by bash, from the root of a fresh copy of the checkout; the blocks of one file run
                    in order in the same copy, so a block can use what an earlier one wrote. Every command
                    must exit 0, except one whose (last) line ends in a comment holding `exit N`
                    (`offsim check ...   # exit 1: the findings`), which must run and exit N.
  python            run by /usr/bin/python3 from the same place; must exit 0
  cpp, c++          compiled (-std=c++20 -fsyntax-only -Wall -Wextra -Werror, include/ on the path)
  json              parsed; a scenario ("format": "offsim-scenario/1") is also run by `offsim eval`
  text              not code (a format's layout, a quoted message, an output): not run

Any other tag, or none, is an error: a block must say what it is.

Markers: HTML comments on the lines just above the opening fence (invisible when rendered):

  <!-- docs-test: skip: REASON -->            the block cannot run in CI, and REASON says why (required)
  <!-- docs-test: known-failing: REASON -->   the block runs and must fail; REASON names what fixes it.
                                              Once it passes, the run fails until the marker is removed.
  <!-- docs-test: same-as: PATH -->           the block is the whole content of PATH (checked byte for byte),
                                              then run as its tag says (a C++ file with PATH's folder on the
                                              include path)
  <!-- docs-test: excerpt-of: PATH -->        the block appears verbatim in PATH, a file that another block
                                              builds or runs; the excerpt itself is not run

The copy: the checkout's files (git ls-files, tracked and untracked-not-ignored; or the tree without
build*/ and .git), plus `build/release` -> the build under test (the README's paths) and
report/web/node_modules -> the checkout's, when it has one. PATH starts with a folder holding `offsim`
(the build under test) and `python3` (/usr/bin/python3); PYTHONPATH is the copy's python/ (docs say to add
it). Each block runs in its own process: a `cd` or a variable does not carry over; files do.

Usage: doc_examples.py --source DIR --build DIR --offsim BIN [--cxx COMPILER] FILE.md...
Exit 0 when every example of every file ran as expected; 1 otherwise (each failure says file:line).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

SHELL_TAGS = {"sh", "bash", "shell"}
PYTHON_TAGS = {"python"}
CPP_TAGS = {"cpp", "c++"}
JSON_TAGS = {"json"}
TEXT_TAGS = {"text"}
KNOWN_TAGS = SHELL_TAGS | PYTHON_TAGS | CPP_TAGS | JSON_TAGS | TEXT_TAGS
PYTHON = "/usr/bin/python3"
BLOCK_TIMEOUT_S = 600

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<kind>[a-z-]+)\s*(?::\s*(?P<arg>.*?))?\s*-->\s*$")
# A shell line's trailing comment that names the exit code it must end with: `cmd ...   # exit 1: why`.
EXIT_COMMENT = re.compile(r"(?:^|\s)#.*?\bexit (?P<code>\d+)\b")


class DocError(Exception):
    """A document that the harness cannot run as it stands (unlabelled block, bad marker)."""


@dataclasses.dataclass
class Block:
    path: str  # as given on the command line, for messages
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    skip: Optional[str] = None
    known_failing: Optional[str] = None
    same_as: Optional[str] = None
    excerpt_of: Optional[str] = None

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def parse_markers(lines: list[str], fence_index: int, where: str) -> dict:
    """The docs-test markers on the lines just above the fence at lines[fence_index]."""
    markers: dict = {}
    i = fence_index - 1
    while i >= 0 and lines[i].lstrip().startswith("<!--") and "docs-test" in lines[i]:
        m = MARKER.match(lines[i])
        if not m:
            raise DocError(f"{where}: unreadable marker {lines[i].strip()!r} "
                           "(expected <!-- docs-test: skip|known-failing|same-as|excerpt-of: TEXT -->)")
        kind, arg = m.group("kind"), (m.group("arg") or "").strip()
        if kind not in ("skip", "known-failing", "same-as", "excerpt-of"):
            raise DocError(f"{where}: unknown marker {kind!r} (skip, known-failing, same-as, excerpt-of)")
        if kind in ("skip", "known-failing") and len(arg) < 10:
            raise DocError(f"{where}: a {kind} marker needs its reason: <!-- docs-test: {kind}: WHY -->")
        if kind in ("same-as", "excerpt-of") and not arg:
            raise DocError(f"{where}: {kind} needs a path relative to the checkout")
        if kind in markers:
            raise DocError(f"{where}: two {kind} markers")
        markers[kind] = arg
        i -= 1
    if "skip" in markers and "known-failing" in markers:
        raise DocError(f"{where}: a block is either skipped or known-failing, not both")
    if "excerpt-of" in markers and len(markers) > 1:
        raise DocError(f"{where}: an excerpt is not run: it takes no other marker")
    return markers


def extract_blocks(path: str, text: str) -> list[Block]:
    """Every fenced block of a CommonMark document, with its markers."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group("fence"), m.group("info").strip()
        where = f"{path}:{i + 1}"
        if fence[0] == "`" and "`" in info:
            i += 1  # not a fence (inline code at a line start)
            continue
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = FENCE.match(lines[j])
            if close and close.group("fence")[0] == fence[0] and len(close.group("fence")) >= len(fence) \
                    and not close.group("info").strip():
                break
            body.append(lines[j])
            j += 1
        if j == len(lines):
            raise DocError(f"{where}: the block opened here is never closed")
        lang = info.split()[0].lower() if info else ""
        if lang not in KNOWN_TAGS:
            raise DocError(f"{where}: a block tagged {lang or '(nothing)'!r}: tag it with what it is "
                           f"({', '.join(sorted(KNOWN_TAGS))}); `text` for what is not code")
        markers = parse_markers(lines, i, where)
        if lang in TEXT_TAGS and markers:
            raise DocError(f"{where}: a text block is never run: it takes no marker")
        blocks.append(Block(path, i + 1, lang, "\n".join(body) + "\n", markers.get("skip"),
                            markers.get("known-failing"), markers.get("same-as"), markers.get("excerpt-of")))
        i = j + 1
    return blocks


def expected_exits(code: str) -> dict[int, int]:
    """Line (1-based, the first line of a command continued with `\\`) -> the exit code its comment names."""
    out: dict[int, int] = {}
    lines = code.split("\n")
    start = None
    for n, line in enumerate(lines, 1):
        if start is None:
            start = n
        if line.endswith("\\"):
            continue
        m = EXIT_COMMENT.search(line)
        if m:
            out[start] = int(m.group("code"))
        start = None
    return out


# Runs a shell block sourced into this driver, so that an ERR trap sees each failing command with its line
# in the block. Lines whose comment names an exit code must fail with exactly it, and must run.
SHELL_DRIVER = r"""
set -E -o pipefail
__dt_block=$1
declare -A __dt_expect=(%(expect)s)
declare -A __dt_seen=()
__dt_on_err() {
  local rc=$1 line=$2 src=$3
  [[ $src == "$__dt_block" ]] || return 0
  if [[ ${__dt_expect[$line]:-0} == "$rc" ]]; then __dt_seen[$line]=1; return 0; fi
  echo "docs-test: line $line of the block exited with $rc, expected ${__dt_expect[$line]:-0}: $(sed -n "${line}p" "$__dt_block")" >&2
  exit 97
}
trap '__dt_on_err $? $LINENO "${BASH_SOURCE[0]}"' ERR
source "$__dt_block"
trap - ERR
for __dt_line in "${!__dt_expect[@]}"; do
  [[ ${__dt_expect[$__dt_line]} == 0 || -n ${__dt_seen[$__dt_line]:-} ]] && continue
  echo "docs-test: line $__dt_line of the block did not exit with ${__dt_expect[$__dt_line]} as its comment says: $(sed -n "${__dt_line}p" "$__dt_block")" >&2
  exit 98
done
exit 0
"""


@dataclasses.dataclass
class Context:
    source: Path
    build: Path
    offsim: Path
    cxx: str
    work: Path  # scratch folder of this run (outside the copy)
    copy: Path  # the copy of the checkout the blocks run in
    env: dict


def checkout_files(source: Path) -> list[str]:
    try:
        out = subprocess.run(["git", "-C", str(source), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             check=True, capture_output=True).stdout
        return [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.CalledProcessError):
        files = []
        for root, dirs, names in os.walk(source):
            rel = Path(root).relative_to(source)
            dirs[:] = [d for d in dirs if not (rel == Path(".") and (d.startswith("build") or d == ".git"))
                       and d != "node_modules"]
            files += [str(rel / n) for n in names]
        return files


def make_copy(ctx: Context) -> None:
    for rel in checkout_files(ctx.source):
        src = ctx.source / rel
        if not src.is_file():
            continue  # deleted in the worktree, or a submodule
        dst = ctx.copy / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
    (ctx.copy / "build").mkdir(exist_ok=True)
    (ctx.copy / "build" / "release").symlink_to(ctx.build.resolve(), target_is_directory=True)
    node_modules = ctx.source / "report" / "web" / "node_modules"
    if node_modules.is_dir():
        (ctx.copy / "report" / "web").mkdir(parents=True, exist_ok=True)
        (ctx.copy / "report" / "web" / "node_modules").symlink_to(node_modules.resolve(), target_is_directory=True)


def make_env(ctx: Context) -> dict:
    bin_dir = ctx.work / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "offsim").symlink_to(ctx.offsim.resolve())
    if Path(PYTHON).exists():
        (bin_dir / "python3").symlink_to(PYTHON)
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ctx.copy / "python")
    env.pop("OFFSIM_REPORT_WEB", None)
    return env


def run_process(cmd: list[str], ctx: Context, block: Block) -> tuple[int, str]:
    started = time.monotonic()
    try:
        p = subprocess.run(cmd, cwd=ctx.copy, env=ctx.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=BLOCK_TIMEOUT_S)
        rc, out = p.returncode, p.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired as e:
        rc, out = 124, (e.stdout or b"").decode(errors="replace") + f"\ndocs-test: timed out after {BLOCK_TIMEOUT_S} s"
    print(f"--- {block.where()} ({block.lang}, {time.monotonic() - started:.1f} s, exit {rc})")
    if out.strip():
        print("    " + out.rstrip().replace("\n", "\n    "))
    return rc, out


def scratch_file(ctx: Context, block: Block, suffix: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{block.path}-{block.line}") + suffix
    path = ctx.work / "blocks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.code)
    return path


def run_block(block: Block, ctx: Context) -> Optional[str]:
    """None when the block did what it must; else what went wrong."""
    if block.excerpt_of is not None:
        target = ctx.source / block.excerpt_of
        if not target.is_file():
            return f"excerpt-of names {block.excerpt_of}, which does not exist"
        if block.code not in target.read_text():
            return f"the block is not an excerpt of {block.excerpt_of}: copy it from the file again"
        print(f"--- {block.where()} ({block.lang}): verbatim in {block.excerpt_of}")
        return None
    if block.same_as is not None:
        target = ctx.source / block.same_as
        if not target.is_file():
            return f"same-as names {block.same_as}, which does not exist"
        if target.read_text() != block.code:
            return f"the block differs from {block.same_as} (same-as): copy the file into the block again"
    if block.lang in SHELL_TAGS:
        path = scratch_file(ctx, block, ".sh")
        expect = " ".join(f"[{line}]={code}" for line, code in sorted(expected_exits(block.code).items()))
        driver = ctx.work / "blocks" / "driver.sh"
        driver.write_text(SHELL_DRIVER % {"expect": expect})
        rc, _ = run_process(["bash", str(driver), str(path)], ctx, block)
        return None if rc == 0 else f"the shell block failed (exit {rc}; its output is above)"
    if block.lang in PYTHON_TAGS:
        rc, _ = run_process([PYTHON, str(scratch_file(ctx, block, ".py"))], ctx, block)
        return None if rc == 0 else f"the Python block failed (exit {rc})"
    if block.lang in CPP_TAGS:
        flags = ["-std=c++20", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", f"-I{ctx.copy / 'include'}"]
        if block.same_as is not None:
            flags.append(f"-I{(ctx.copy / block.same_as).parent}")
        rc, _ = run_process([ctx.cxx, *flags, "-x", "c++", str(scratch_file(ctx, block, ".cpp"))], ctx, block)
        return None if rc == 0 else f"the C++ block does not compile (exit {rc})"
    if block.lang in JSON_TAGS:
        try:
            value = json.loads(block.code)
        except json.JSONDecodeError as e:
            return f"not valid JSON: {e}"
        if isinstance(value, dict) and value.get("format") == "offsim-scenario/1":
            path = scratch_file(ctx, block, ".json")
            rc, _ = run_process(["offsim", "eval", "--suite", str(path), "--no-min-capacity", "--quiet"], ctx, block)
            return None if rc == 0 else f"`offsim eval` refuses the scenario (exit {rc})"
        print(f"--- {block.where()} (json): parsed")
        return None
    return None  # text


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", required=True, type=Path, help="the offsim checkout")
    parser.add_argument("--build", required=True, type=Path, help="the build under test (becomes build/release)")
    parser.add_argument("--offsim", required=True, type=Path, help="the offsim binary under test")
    parser.add_argument("--cxx", default=os.environ.get("CXX", "c++"), help="C++ compiler for cpp blocks")
    parser.add_argument("--keep", action="store_true", help="keep the copy even when everything passed")
    parser.add_argument("files", nargs="+", help="Markdown files, relative to --source")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="offsim-docs-"))
    ctx = Context(args.source.resolve(), args.build, args.offsim, args.cxx, work, work / "checkout", {})
    ctx.copy.mkdir()
    make_copy(ctx)
    ctx.env = make_env(ctx)
    failures: list[str] = []
    for md in args.files:
        file_failures, counts = run_file_at(md, md if os.path.isabs(md) else str(ctx.source / md), ctx)
        failures += file_failures
        print(f"{md}: {counts['ran']} run, {counts['known-failing']} known-failing, {counts['skipped']} skipped, "
              f"{counts['text']} text; {len(file_failures)} failed")
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        print(f"(the copy the blocks ran in is kept: {ctx.copy})")
        return 1
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def run_file_at(name: str, path: str, ctx: Context) -> tuple[list[str], dict]:
    """The failures of the document at `path` (messages name it `name`), and counts by outcome."""
    counts = {"ran": 0, "skipped": 0, "known-failing": 0, "text": 0}
    try:
        text = Path(path).read_text()
    except OSError as e:
        return [f"{name}: cannot read it: {e}"], counts
    return run_blocks(name, text, ctx)


def run_blocks(name: str, text: str, ctx: Context) -> tuple[list[str], dict]:
    counts = {"ran": 0, "skipped": 0, "known-failing": 0, "text": 0}
    failures: list[str] = []
    try:
        blocks = extract_blocks(name, text)
    except DocError as e:
        return [str(e)], counts
    for block in blocks:
        if block.lang in TEXT_TAGS:
            counts["text"] += 1
            continue
        if block.skip is not None:
            counts["skipped"] += 1
            print(f"--- {block.where()} ({block.lang}): SKIPPED: {block.skip}")
            continue
        problem = run_block(block, ctx)
        if block.known_failing is not None:
            counts["known-failing"] += 1
            if problem is None:
                failures.append(f"{block.where()}: marked known-failing ({block.known_failing}) but it passes now: "
                                "remove the marker")
            else:
                print(f"--- {block.where()}: fails as its marker says ({block.known_failing}): {problem}")
            continue
        counts["ran"] += 1
        if problem is not None:
            failures.append(f"{block.where()}: {problem}")
    return failures, counts


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
