"""Counts test cases in the JUnit files that `meson test` left in the build dir; prints "N passed, N failed"."""
import glob
import json
import os
import sys
import xml.etree.ElementTree as ET

build = sys.argv[1]
passed = failed = 0
reported = set()
for path in sorted(glob.glob(os.path.join(build, "tests", "junit-*.xml"))):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        continue
    reported.add(os.path.basename(path)[len("junit-"):-len(".xml")])
    for case in root.iter("testcase"):
        if case.find("skipped") is not None:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
            print(f"FAILED {case.get('classname', '')}::{case.get('name', '')}")
        else:
            passed += 1
# A suite that crashed before writing its report counts as one failure.
log = os.path.join(build, "meson-logs", "testlog.json")
if os.path.exists(log):
    with open(log) as f:
        for line in f:
            try:
                t = json.loads(line)
            except ValueError:
                continue
            if t.get("name") in reported:
                continue
            # A suite without a JUnit report (the fuzz replays) counts as one test.
            if t.get("result") in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif t.get("result") != "SKIP":
                failed += 1
                print(f"FAILED suite {t.get('name')} ({t.get('result')}) without a report")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
