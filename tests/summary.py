"""Counts test cases in the JUnit files that `meson test` left in build dirs; prints "N passed, N failed".

Usage: summary.py BUILD_DIR[:SUITE,SUITE...]...  (the main build, then e.g. the sanitizer build with
the suites it runs: build-asan:unit,fuzz). Skipped test cases are listed and counted on a line of
their own; they count neither as passed nor as failed. Every test meson knows (in the suites named,
or all) must have a result from this run: a JUnit report, or else its line in testlog.json; a test
with neither (pytest killed, a stale file from an earlier run) fails.
"""
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0


def fail(text):
    global failed
    failed += 1
    print("FAILED " + text)


def short(name):
    # meson names a test "<project>[:<suite>] / <name>"; its report is junit-<name>.xml.
    return name.split(" / ")[-1]


def count(build, suites):
    global passed, skipped
    # What this run said about each test, from meson's log (rewritten by every `meson test`).
    results = {}
    log = os.path.join(build, "meson-logs", "testlog.json")
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                try:
                    t = json.loads(line)
                except ValueError:
                    continue
                results[short(t.get("name", ""))] = (t.get("result"), t.get("starttime", 0))

    reported = set()
    for path in sorted(glob.glob(os.path.join(build, "tests", "junit-*.xml"))):
        name = os.path.basename(path)[len("junit-"):-len(".xml")]
        if name not in results or os.path.getmtime(path) < results[name][1]:
            continue  # stale: written by an earlier run, not by this run's test
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue
        reported.add(name)
        for case in root.iter("testcase"):
            title = f"{case.get('classname', '')}::{case.get('name', '')}"
            if case.find("skipped") is not None:
                skipped += 1
                print(f"SKIPPED {title}: {case.find('skipped').get('message', '')}")
            elif case.find("failure") is not None or case.find("error") is not None:
                fail(f"{title} ({build})")
            else:
                passed += 1

    for name, (result, _) in results.items():
        if name in reported:
            if result not in ("OK", "EXPECTEDFAIL"):
                fail(f"suite {name} ({result}) after its report ({build})")  # a crash, a sanitizer report at exit
            continue
        # A suite without a JUnit report (the fuzz replays) counts as one test.
        if result in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif result != "SKIP":
            fail(f"suite {name} ({result}) without a report ({build})")

    # A test meson knows that left no result at all: the run was cut short.
    intro = os.path.join(build, "meson-info", "intro-tests.json")
    if not os.path.exists(intro):
        fail(f"no {intro}: not a configured build dir")
        return
    with open(intro) as f:
        for t in json.load(f):
            in_run = not suites or any(s.split(":")[-1] in suites for s in t.get("suite", []))
            if in_run and t["name"] not in results:
                fail(f"suite {t['name']}: no result from this run")


for arg in sys.argv[1:]:
    build, _, names = arg.rpartition(":") if ":" in os.path.basename(arg) else (arg, "", "")
    count(build, set(filter(None, names.split(","))))
if skipped:
    print(f"{skipped} skipped")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
