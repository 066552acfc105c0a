#!/usr/bin/python3
"""What `offsim check --corpus --junit X --json Y` wrote (ctest gate_known_bug_corpus, run first): the JSON
holds every entry with its buggy searches, a fixed search per applicable property and seed, the stored
replays and the verdict; the JUnit XML has a testcase per search (buggy and fixed) and per stored replay,
and its failure count agrees with the JSON.

usage: corpus_reports.py JUNIT JSON. Exits 0 or raises."""
import json
import sys
import xml.etree.ElementTree as ET


def main(junit_path, json_path):
    with open(json_path, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["format"] == "offsim-corpus/1", doc["format"]
    assert doc["ok"] is True and doc["seeds"] == [20261126] and doc["cases"] == 60, doc
    entries = doc["entries"]
    assert len(entries) >= 5, len(entries)
    expected_cases = 0
    for e in entries:
        assert e["ok"] and e["detected"] == 1, e["bug"]
        assert all(s["outcome"] == "violated" for s in e["buggy_searches"]), e["bug"]
        fixed_properties = [s["property"] for s in e["fixed_searches"]]
        # Every property that applies to the fixed variant: P3 and P4 always, P1/P2/P5 where they apply.
        assert {"P3", "P4"} <= set(fixed_properties), (e["bug"], fixed_properties)
        for s in e["fixed_searches"]:
            assert s["fails_entry"] is False, (e["bug"], s)
            if s["outcome"] != "holds":
                assert s["excuse"], (e["bug"], s)
        for x in e["fixed_exceptions"]:
            assert x["why"], (e["bug"], x)
        expected_cases += (len(e["buggy_searches"]) + len(e["fixed_searches"]) + len(e["buggy_replays"]) +
                           len(e["fixed_replays"]))

    root = ET.parse(junit_path).getroot()
    cases = root.findall("./testsuite/testcase")
    assert int(root.get("tests")) == len(cases) == expected_cases, (root.get("tests"), len(cases), expected_cases)
    assert root.get("failures") == "0", root.attrib
    assert len(root.findall("./testsuite")) == len(entries)
    names = [c.get("name") for c in cases]
    assert sum(n.startswith("buggy ") for n in names) == len(entries), names
    assert sum(n.startswith("fixed ") for n in names) == sum(len(e["fixed_searches"]) for e in entries), names
    skipped = len(root.findall("./testsuite/testcase/skipped"))
    assert int(root.get("skipped")) == skipped >= 1, "P5 over-estimates of fixed variants are reported as skipped"
    print(f"corpus reports: {len(entries)} entries, {len(cases)} testcases, {skipped} reported")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
