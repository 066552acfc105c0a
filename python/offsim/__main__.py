"""python3 -m offsim: offsim's eval and check for a policy written in Python (docs/python.md).

  python3 -m offsim eval  --policy PKG.MODULE:CLASS -s SCENARIO [-s ...] [--strict]  # P1-P5 per scenario
  python3 -m offsim check --policy PKG.MODULE:CLASS [--property P3] [--seed N] [--seeds K] [--cases N] [--out DIR]
  python3 -m offsim check --policy PKG.MODULE:CLASS --property P3 --replay COUNTEREXAMPLE.json
  python3 -m offsim check --decisions LOG                                             # = offsim check --decisions

Exit codes, as offsim's own commands (docs/exit_codes.md): 0 nothing gated on failed; 1 a P1-P4 check failed
or was not checked (eval: only with --strict); 2 offsim could not do the job (a malformed scenario or log, an
error inside the policy); 64 usage error (an unknown option, policy, module or class).
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, List, Optional

from . import _core, checks, policy as policy_module

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_USAGE = 0, 1, 2, 64


class UsageError(Exception):
    """The command line is wrong; nothing ran."""


def load_policy(spec: str) -> Any:
    """"pkg.module:Class" -> the class (or factory); a plain id names one of offsim's transcribed policies."""
    if ":" not in spec:
        if spec not in _core.policy_ids():
            raise UsageError(f"--policy {spec}: not pkg.module:Class and not an offsim policy id")
        return spec
    module, _, name = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as error:
        raise UsageError(f"--policy {spec}: {error}") from None
    return obj


def _eval(args: argparse.Namespace) -> int:
    policy = load_policy(args.policy)
    failed = False
    for scenario in args.scenario:
        r = policy_module.evaluate(policy, scenario, root=args.root, min_capacity=not args.no_min_capacity)
        verdicts = "  ".join(f"{pid} {p['verdict']}" for pid, p in r["properties"].items())
        print(f"{r['policy']['id']} on {r['scenario']['name']}: {'completed' if r['completed'] else 'FAILED'}  {verdicts}")
        if r["failure"]:
            print(f"  {r['failure']}")
        if r["diagnosis"]:
            print(f"  diagnosis: {r['diagnosis']}")
        failed = failed or any(p["verdict"] == "FAIL" for pid, p in r["properties"].items() if pid != "P5")
    return EXIT_FAILED if failed and args.strict else EXIT_OK


def _check(args: argparse.Namespace) -> int:
    if args.decisions:
        report = checks.check(args.decisions, root=args.root)
        print(report, end="")
        return EXIT_FAILED if report.failed else EXIT_OK
    if not args.policy:
        raise UsageError("check: --policy or --decisions is required")
    if args.seeds < 1 or args.cases < 1:
        raise UsageError("check: --seeds and --cases must be at least 1 (a gate that checks nothing is no gate)")
    policy = load_policy(args.policy)
    if args.replay:
        if len(args.property) != 1:
            raise UsageError("check --replay: name exactly one --property")
        c = policy_module.check_counterexample(policy, args.property[0], args.replay, root=args.root)
        results, failed = [c], c["violated"]
    else:
        gate = policy_module.check_generated(policy, properties=args.property,
                                             seeds=[args.seed + i for i in range(args.seeds)], cases=args.cases,
                                             out=args.out, root=args.root)
        results, failed = gate["checks"], gate["failed"]
    for c in results:
        status = "holds" if c["ok"] else ("reported" if not c["blocks_gate"] else c["outcome"].upper())
        print(f"{c['policy']} {c['property']} seed {c['seed']}: {status} ({c['cases']} cases)")
        if c["failure"]:
            print(f"  {c['failure']}")
        if c["missing_classes"]:
            print(f"  not exercised: {', '.join(c['missing_classes'])}")
        if c["violated"] and c["replay_command"]:
            print(f"  replay: {c['replay_command']}")
    print("check: FAILED" if failed else "check: passed")
    return EXIT_FAILED if failed else EXIT_OK


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own exit code is 2; offsim's usage errors are 64
        self.print_usage(sys.stderr)
        print(f"{self.prog}: usage error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def main(argv: Optional[List[str]] = None) -> int:
    parser = _Parser(prog="python3 -m offsim", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=None, help="offsim checkout holding scenarios/ and traces/")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    e = sub.add_parser("eval", help="run a policy on scenarios and judge P1-P5")
    e.add_argument("--policy", "-p", required=True, help="pkg.module:Class of a Python policy, or an offsim policy id")
    e.add_argument("--scenario", "-s", action="append", required=True, help="scenario file (repeatable)")
    e.add_argument("--no-min-capacity", action="store_true", help="skip P4's capacity search")
    e.add_argument("--strict", action="store_true", help="exit 1 when a P1-P4 verdict is FAIL")
    c = sub.add_parser("check", help="the property gate over generated cases, a counterexample, or a decision log")
    c.add_argument("--policy", "-p", help="pkg.module:Class of a Python policy, or an offsim policy id")
    c.add_argument("--property", action="append", default=[], choices=["P1", "P2", "P3", "P4", "P5"],
                   help="P1..P5 (repeatable; default: all that apply)")
    c.add_argument("--seed", type=int, default=20261126)
    c.add_argument("--seeds", type=int, default=1)
    c.add_argument("--cases", type=int, default=60)
    c.add_argument("--out", default=None, help="folder for shrunk counterexamples")
    c.add_argument("--replay", default=None, help="re-check one stored counterexample scenario")
    c.add_argument("--decisions", default=None, help="check P1-P5 on a decision log")
    args = parser.parse_args(argv)
    try:
        return _eval(args) if args.command == "eval" else _check(args)
    except UsageError as error:
        print(f"python3 -m offsim {args.command}: usage error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except (_core.ConfigError, _core.ParseError, _core.UsageError, OSError) as error:
        print(f"python3 -m offsim: error: {error}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
