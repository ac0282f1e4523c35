"""tests/summary.py counts only this run's results: stale reports, missing results and skips."""
import json
import os
import subprocess
import sys
import time

from ferry_harness import REPO

SUMMARY = os.path.join(REPO, "tests", "summary.py")


def junit(cases):
    body = "".join(f'<testcase classname="c" name="{n}">{inner}</testcase>' for n, inner in cases)
    return f'<?xml version="1.0"?><testsuites><testsuite>{body}</testsuite></testsuites>'


def fake_build(tmp_path, tests, log, reports, report_age=0):
    """A build dir: meson's test list, this run's testlog.json, and JUnit reports `report_age` s old."""
    for d in ("meson-info", "meson-logs", "tests"):
        (tmp_path / d).mkdir()
    (tmp_path / "meson-info" / "intro-tests.json").write_text(json.dumps([{"name": t} for t in tests]))
    now = time.time()
    (tmp_path / "meson-logs" / "testlog.json").write_text(
        "".join(json.dumps({"name": n, "result": r, "starttime": now - 1}) + "\n" for n, r in log))
    for name, cases in reports.items():
        path = tmp_path / "tests" / f"junit-{name}.xml"
        path.write_text(junit(cases))
        os.utime(path, (now - report_age, now - report_age))
    return subprocess.run([sys.executable, SUMMARY, str(tmp_path)], capture_output=True, text=True)


def test_counts_passes_failures_and_skips(tmp_path):
    p = fake_build(tmp_path, ["unit", "fuzz"], [("unit", "FAIL"), ("fuzz", "OK")],
                   {"unit": [("a", ""), ("b", "<failure/>"), ("c", '<skipped message="no tool"/>')]})
    lines = p.stdout.splitlines()
    assert lines[-1] == "2 passed, 2 failed", p.stdout  # a, fuzz; b, and the suite's FAIL
    assert "1 skipped" in lines and "SKIPPED c::c: no tool" in lines, p.stdout
    assert p.returncode == 1


def test_a_stale_report_is_not_counted(tmp_path):
    # pytest was killed: meson logged the suite, but the report is an earlier run's.
    p = fake_build(tmp_path, ["integration"], [("integration", "TIMEOUT")],
                   {"integration": [("a", ""), ("b", "")]}, report_age=3600)
    assert p.stdout.splitlines()[-1] == "0 passed, 1 failed", p.stdout
    assert p.returncode == 1


def test_a_test_without_any_result_fails_the_run(tmp_path):
    # The run was cut short: meson knows the test, but this run left nothing about it.
    p = fake_build(tmp_path, ["unit", "integration"], [("unit", "OK")], {"unit": [("a", "")],
                   "integration": [("old", "")]}, report_age=0)
    assert "FAILED suite integration: no result from this run" in p.stdout, p.stdout
    assert p.stdout.splitlines()[-1] == "1 passed, 1 failed"
    assert p.returncode == 1


def test_a_clean_run_passes(tmp_path):
    p = fake_build(tmp_path, ["unit"], [("unit", "OK")], {"unit": [("a", ""), ("b", "")]})
    assert p.stdout.splitlines()[-1] == "2 passed, 0 failed" and p.returncode == 0, p.stdout


def test_a_build_that_runs_some_suites_is_judged_on_those(tmp_path):
    # The sanitizer build runs only the unit and fuzz suites; meson names them "ferry:unit / unit".
    for d in ("meson-info", "meson-logs", "tests"):
        (tmp_path / d).mkdir()
    (tmp_path / "meson-info" / "intro-tests.json").write_text(json.dumps(
        [{"name": "unit", "suite": ["ferry:unit"]}, {"name": "integration", "suite": ["ferry"]},
         {"name": "fuzz-replay-x", "suite": ["ferry:fuzz"]}]))
    (tmp_path / "meson-logs" / "testlog.json").write_text(
        json.dumps({"name": "ferry:unit / unit", "result": "OK", "starttime": time.time() - 1}) + "\n")
    (tmp_path / "tests" / "junit-unit.xml").write_text(junit([("a", "")]))
    p = subprocess.run([sys.executable, SUMMARY, f"{tmp_path}:unit,fuzz"], capture_output=True, text=True)
    assert "FAILED suite fuzz-replay-x: no result from this run" in p.stdout, p.stdout
    assert "integration" not in p.stdout, p.stdout
    assert p.stdout.splitlines()[-1] == "1 passed, 1 failed", p.stdout
