"""The RFC 7208 SPF test suite (the openspf.org YAML suite that pyspf uses, shipped by Debian's
python3-spf) run against ferry's check_host(): every scenario's zone and each of its tests go
through tests/tools/spf-zone, which answers ferry's queries from the zone; each test is one case
named scenario/test, asserting the suite's result (one of its list when it gives several) and its
explanation where it gives one ("DEFAULT" is ours: no exp= text)."""
import gzip
import os
import subprocess

import pytest

from ferry_harness import binary

SUITE = "/usr/share/doc/python3-spf/rfc7208-tests.yml.gz"

try:
    import yaml
except ImportError:  # python3-yaml
    yaml = None


def zone_lines(zonedata):
    """The zone as the tool's lines, converted as the suite's own driver does: a name with SPF
    (type 99) records and no TXT record gets them as TXT (RFC 7208 drops type SPF; the suite
    relies on drivers to duplicate), otherwise type SPF is not served."""
    lines = []
    for name, records in zonedata.items():
        spf_only = not any(isinstance(r, dict) and "TXT" in r for r in records)
        generated = []
        for r in records:
            if r == "TIMEOUT":
                lines.append(["TIMEOUT", name])
                continue
            ((rtype, value),) = r.items()
            if rtype in ("TXT", "SPF"):
                strings = [value] if isinstance(value, str) else list(value)
                if strings == ["NONE"]:
                    continue
                if rtype == "SPF":
                    if spf_only:
                        generated.append(["TXT", name] + strings)
                    continue
                lines.append(["TXT", name] + strings)
            elif rtype == "MX":
                lines.append(["MX", name, value[1]])
            else:
                lines.append([rtype, name, str(value)])
        lines.extend(generated)
    return lines


def load_cases():
    if yaml is None or not os.path.exists(SUITE):
        return []
    cases = []
    with gzip.open(SUITE, "rt", encoding="utf-8") as f:
        for scenario in yaml.safe_load_all(f):
            zone = zone_lines(scenario.get("zonedata") or {})
            for name, test in scenario["tests"].items():
                cases.append(pytest.param(scenario["description"], zone, test, id=f"{scenario['description']}/{name}"))
    return cases


# Cases where ferry and the suite part ways, each with why (the case still runs: xfail is strict).
XFAIL = {
    "Macro expansion rules/v-macro-ip6":
        "the suite wants %{i} of CAFE:BABE::1 as upper-case nibbles (E.B.A.B.E.F.A.C), copying the case the "
        "address was written in; ferry writes them lower case as RFC 7208 7.4's ip6 example does",
}

CASES = load_cases()

pytestmark = pytest.mark.skipif(not CASES, reason="the RFC 7208 test suite (Debian python3-spf, and python3-yaml) is not installed")


def escape(field):
    """A field for the tool's line format: backslash, tab and newline escaped."""
    return field.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def run_case(zone, test):
    lines = zone + [["CHECK", test["host"], test["mailfrom"], test["helo"]]]
    text = "".join("\t".join(escape(f) for f in fields) + "\n" for fields in lines)
    p = subprocess.run([binary("spf-zone")], input=text.encode("utf-8"), capture_output=True, timeout=30)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    result, explanation, reason = p.stdout.decode("utf-8", errors="replace").rstrip("\n").split("\t", 2)
    return result, explanation, reason


@pytest.mark.parametrize("scenario,zone,test", CASES)
def test_rfc7208_suite(request, scenario, zone, test):
    case = request.node.callspec.id
    if case in XFAIL:
        request.applymarker(pytest.mark.xfail(reason=XFAIL[case], strict=True))
    result, explanation, reason = run_case(zone, test)
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert result in expected, f"{case} ({test.get('spec')}): {result} ({reason}), the suite wants {expected}"
    if "explanation" in test:
        want = "" if test["explanation"] == "DEFAULT" else test["explanation"]
        assert explanation == want, f"{case}: explanation {explanation!r}, the suite wants {test['explanation']!r}"
