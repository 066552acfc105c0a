"""Command line of the GPU data collection: `python -m offsim_gpu <part> ...` (run.sh calls these).

Parts (each writes into --out as soon as it has something, and records itself in metadata.json):
  meta          machine, driver, versions, device properties, memory outside the allocator
  allocdiff     allocator differential runs (one fresh process per PYTORCH_CUDA_ALLOC_CONF)
  vae           VAE decode/encode cold peaks and traces (one fresh process per point), --tiers 0 or 1,2,3
  scenarios     seed scenarios on emulated smaller cards (ballast outside PyTorch)
  finalize      check the output folder against the device's return limits
Helpers: plan (print the VAE grid with estimates), commit (unpack a returned run into traces/gpu/),
and the per-process workers allocdiff-worker, vae-point, scenario-worker.
Every part takes --dry-run: all logic on the CPU, no CUDA call.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback

from . import common


def _part(name: str, out_dir: str, fn) -> int:
    t0 = time.time()
    common.log(name, "start")
    try:
        if os.environ.get("OFFSIM_INJECT_FAILURE") == name:  # test hook: prove later parts survive a failure
            raise RuntimeError(f"failure injected into part {name} (OFFSIM_INJECT_FAILURE)")
        summary = fn() or {}
        status = summary.get("status", "ok")
        rc = 0
    except Exception as e:  # noqa: BLE001 - recorded; run.sh goes on with the next part
        summary = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}
        status = "failed"
        rc = 1
        common.log(name, f"FAILED: {summary['error']}")
    summary["status"] = status
    summary["wall_s"] = round(time.time() - t0, 2)
    if out_dir:
        common.update_metadata(out_dir, f"parts.{name}", summary)
    common.log(name, f"{status} in {summary['wall_s']} s")
    return rc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="offsim_gpu", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    def common_args(p, budget=True):
        p.add_argument("--out", required=True, help="output folder (what comes back from the GPU machine)")
        p.add_argument("--work", required=True, help="scratch folder outside --out")
        p.add_argument("--dry-run", action="store_true", help="CPU only: all logic except the CUDA calls")
        if budget:
            p.add_argument("--budget", type=float, default=60.0, help="seconds for this part")

    common_args(sub.add_parser("meta"))

    p = sub.add_parser("allocdiff")
    common_args(p)
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--n-ops", type=int, default=None)

    p = sub.add_parser("allocdiff-worker")
    p.add_argument("--config-name", required=True)
    p.add_argument("--alloc-conf", default="")
    p.add_argument("--fraction", action="store_true")
    p.add_argument("--seeds", required=True)
    p.add_argument("--n-ops", type=int, required=True)
    p.add_argument("--limit", type=int, required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--dry-run", action="store_true")

    p = sub.add_parser("vae")
    common_args(p)
    p.add_argument("--tiers", default="0", help="comma list of tiers (0 = the Qwen-Image points that matter most)")
    p.add_argument("--launcher", choices=("fork", "spawn"), default="fork")
    p.add_argument("--limit", type=int, default=None, help="run at most this many points")
    p.add_argument("--part-name", default=None)

    p = sub.add_parser("vae-point")
    p.add_argument("--spec", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--result", required=True)
    p.add_argument("--dry-run", action="store_true")

    p = sub.add_parser("scenarios")
    common_args(p)
    p.add_argument("--only", default=None, help="comma list of scenario variants")

    p = sub.add_parser("scenario-worker")
    p.add_argument("--name", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--dry-run", action="store_true")

    p = sub.add_parser("finalize")
    p.add_argument("--out", required=True)
    p.add_argument("--work", default=None)

    p = sub.add_parser("plan")
    p.add_argument("--tiers", default="0,1,2,3")
    p.add_argument("--budget", type=float, default=None)

    p = sub.add_parser("commit")
    p.add_argument("--src", required=True, help="folder holding the returned files (metadata.json, *.tar.gz, ...)")
    p.add_argument("--traces-root", required=True, help="e.g. traces/gpu")
    p.add_argument("--date", default=None)
    p.add_argument("--git-sha", default=None)

    a = ap.parse_args(argv)

    if a.cmd == "meta":
        from . import meta
        return _part("meta", a.out, lambda: meta.run_part(a.out, a.work, a.dry_run))

    if a.cmd == "allocdiff":
        from . import allocdiff
        seeds = tuple(int(s) for s in a.seeds.split(",") if s)
        n_ops = a.n_ops or (300 if a.dry_run else allocdiff.DEFAULT_OPS)
        return _part("allocdiff", a.out, lambda: allocdiff.run_part(a.out, a.work, a.budget, a.dry_run, seeds, n_ops))

    if a.cmd == "allocdiff-worker":
        from . import allocdiff
        return allocdiff.worker(a.config_name, a.alloc_conf, a.fraction, [int(s) for s in a.seeds.split(",")],
                                a.n_ops, a.limit, a.work, a.dry_run)

    if a.cmd == "vae":
        from . import vae_points
        tiers = tuple(int(t) for t in a.tiers.split(",") if t)
        name = a.part_name or f"vae_tiers{'-'.join(map(str, tiers))}"
        return _part(name, a.out, lambda: vae_points.run_part(a.out, a.work, a.budget, a.dry_run, tiers, a.launcher, a.limit))

    if a.cmd == "vae-point":
        from . import vae_points
        spec = json.loads(a.spec)
        try:
            res = vae_points.run_point(spec, a.work, a.dry_run)
        except BaseException as e:  # noqa: BLE001
            res = {"id": spec.get("id"), "status": "error", "error": f"{type(e).__name__}: {e}"[:2000]}
        common.atomic_write_json(a.result, res)
        return 0

    if a.cmd == "scenarios":
        from . import scenarios
        names = tuple(a.only.split(",")) if a.only else scenarios.ORDER
        return _part("scenarios", a.out, lambda: scenarios.run_part(a.out, a.work, a.budget, a.dry_run, names))

    if a.cmd == "scenario-worker":
        from . import scenarios
        res = scenarios.run_variant(a.name, a.work, a.dry_run)
        common.atomic_write_json(os.path.join(a.work, f"{a.name}.json"), res)
        return 0 if res.get("status") in ("ok", "oom") else 1

    if a.cmd == "finalize":
        from . import pack

        def fin():
            chk = pack.check_out_dir(a.out)
            if chk["problems"]:
                common.log("finalize", "PROBLEMS: " + "; ".join(chk["problems"]))
            return {"status": "ok" if not chk["problems"] else "problems", **chk}
        rc = _part("finalize", a.out, fin)
        return rc

    if a.cmd == "plan":
        from . import vae_points
        tiers = {int(t) for t in a.tiers.split(",") if t}
        total = 0.0
        for p in vae_points.grid():
            if p.tier not in tiers:
                continue
            est = vae_points.estimate_s(p)
            total += est
            mark = "" if a.budget is None or total <= a.budget else "  (beyond budget)"
            print(f"tier {p.tier}  {est:6.1f}s  cum {total:7.1f}s  {p.id}{'  trace' if p.trace else ''}"
                  f"{'  warm' if p.warm else ''}{mark}")
        return 0

    if a.cmd == "commit":
        from . import pack
        dest = pack.commit_layout(a.src, a.traces_root, a.date, a.git_sha)
        print(dest)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
