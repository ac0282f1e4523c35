"""Counts test cases in the JUnit files that `meson test` left in build dirs; prints "N passed, N failed".

Usage: summary.py BUILD_DIR... (the main build, then e.g. the sanitizer build)."""
import glob
import json
import os
import sys

import xml.etree.ElementTree as ET

passed = failed = 0
for build in sys.argv[1:]:
    reported = {}  # suite name -> test cases that failed in its report
    for path in sorted(glob.glob(os.path.join(build, "tests", "junit-*.xml"))):
        try:
            root = ET.parse(path).getroot()
        except ET.ParseError:
            continue
        name = os.path.basename(path)[len("junit-"):-len(".xml")]
        reported[name] = 0
        for case in root.iter("testcase"):
            if case.find("skipped") is not None:
                continue
            if case.find("failure") is not None or case.find("error") is not None:
                failed += 1
                reported[name] += 1
                print(f"FAILED {case.get('classname', '')}::{case.get('name', '')} ({build})")
            else:
                passed += 1
    # A suite that crashed before writing its report counts as one failure.
    log = os.path.join(build, "meson-logs", "testlog.json")
    if not os.path.exists(log):
        continue
    with open(log) as f:
        for line in f:
            try:
                t = json.loads(line)
            except ValueError:
                continue
            # meson names a test "<project>[:<suite>] / <name>"; its report is junit-<name>.xml.
            name = t.get("name", "").split(" / ")[-1]
            if name in reported:
                # Every case passed, yet the process failed (a sanitizer report at exit): one failure.
                if reported[name] == 0 and t.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP"):
                    failed += 1
                    print(f"FAILED suite {t.get('name')} ({t.get('result')}) after its report ({build})")
                continue
            # A suite without a JUnit report (the fuzz replays) counts as one test.
            if t.get("result") in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif t.get("result") != "SKIP":
                failed += 1
                print(f"FAILED suite {t.get('name')} ({t.get('result')}) without a report ({build})")
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
