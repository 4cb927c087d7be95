#!/usr/bin/env python3
"""Verdicts of one libiscsi iscsi-test-cu suite run, against the accepted list.

Used by tests/integration/test_conformance.sh; standard library only.

  cu_parse.py suites LISTFILE FAMILY
      the suites of FAMILY (e.g. ALL) in `iscsi-test-cu --list` output
  cu_parse.py check LISTFILE ACCEPTED SUITE OUTPUT RC DAEMON_DIED TALLY
      reads the console output of `iscsi-test-cu -t SUITE`, prints one line
      per test (PASS / FAIL / ACCEPTED) and appends "passed failed accepted
      skipped xpass" to TALLY
  cu_parse.py lint ACCEPTED
      checks the accepted list's syntax

CUnit's console mode prints "  Test: NAME ...", the test's own output, then
"passed" or "FAILED" (the latter followed by "    N. file:line - assertion").
libiscsi tests that cannot run print "[SKIPPED] reason" and pass; they are
counted as passed and flagged as skipped.
"""

import fnmatch
import os
import re
import sys

TEST_RE = re.compile(r"^  Test: (\S+) \.\.\.(.*)$")
SUITE_RE = re.compile(r"^Suite: (\S+)")
VERDICT_RE = re.compile(r"^(passed|FAILED)\b")
ASSERT_RE = re.compile(r"^\s+\d+\. \S+:\d+ ")
SUMMARY_RE = re.compile(r"^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)")


def read_list(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def suites_of(names, family):
    return [n for n in names if n.startswith(family + ".") and n.count(".") == 1]


def tests_of(names, suite):
    return [n for n in names if n.startswith(suite + ".") and n.count(".") == 2]


def load_accepted(path):
    """Lines 'PATTERN  # reason'; PATTERN is a test name, a suite name (all of
    its tests) or an fnmatch pattern. Returns [(pattern, reason, lineno)] and
    a list of syntax errors."""
    entries, errors = [], []
    with open(path) as f:
        for lineno, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, reason = line.partition("#")
            name, reason = name.strip(), reason.strip()
            if not sep or not reason:
                errors.append("line %d: '%s' has no reason after '#'" % (lineno, name))
                continue
            if len(name.split()) != 1:
                errors.append("line %d: '%s' is not one test name or pattern" % (lineno, name))
                continue
            entries.append((name, reason, lineno))
    return entries, errors


def accepted_reason(entries, test):
    suite = test.rsplit(".", 1)[0]
    for pattern, reason, _ in entries:
        if pattern == test or pattern == suite or fnmatch.fnmatchcase(test, pattern):
            return reason
    return None


def exact_entry(entries, test):
    """True if TEST itself (not its suite or a pattern) is listed."""
    return any(pattern == test for pattern, _, _ in entries)


def parse_output(text):
    """Returns ({short test name: (verdict, [lines])}, summary tuple or None)."""
    results = {}
    order = []
    current = None
    lines = []
    summary = None
    in_summary = False
    for line in text.splitlines():
        m = TEST_RE.match(line)
        if m:
            current, rest = m.group(1), m.group(2)
            lines = [line]
            order.append(current)
            v = VERDICT_RE.match(rest)
            if v:
                # Text after the verdict on its line is printed by what runs next.
                lines[0] = line[:len(line) - len(rest)] + v.group(1)
                results[current] = (v.group(1), lines)
                current = None
            continue
        m = SUMMARY_RE.match(line)
        if m:
            summary = tuple(int(x) for x in m.groups())
            current = None
            continue
        if line.startswith("Run Summary"):
            in_summary = True
        if SUITE_RE.match(line) or in_summary:
            current = None
            continue
        if current is not None:
            v = VERDICT_RE.match(line)
            if v:
                lines.append(v.group(1))
                results[current] = (v.group(1), lines)
                current = None
            else:
                lines.append(line)
            continue
        # Assertion lines after FAILED belong to the last test.
        if order and ASSERT_RE.match(line) and order[-1] in results:
            results[order[-1]][1].append(line)
    return results, order, summary


def skip_reason(lines):
    for line in lines:
        i = line.find("[SKIPPED]")
        if i >= 0:
            return line[i + len("[SKIPPED]"):].strip()
    return None


def check(listfile, accepted_path, suite, output_path, rc, daemon_died, tally_path):
    names = read_list(listfile)
    expected = tests_of(names, suite)
    entries, errors = load_accepted(accepted_path)
    with open(output_path, errors="replace") as f:
        text = f.read()
    results, order, summary = parse_output(text)
    family, suite_short = suite.split(".", 1)
    passed = failed = accepted = skipped = xpass = 0
    why_missing = "iscsi-test-cu exit status %s" % rc
    if rc == "budget":
        why_missing = "not run: the conformance time budget was used up"
    elif rc == "no-daemon":
        why_missing = "not run: the daemon could not be restarted"
    elif rc in ("124", "137"):
        why_missing = "iscsi-test-cu timed out"
    elif rc.isdigit() and 128 < int(rc) <= 192:
        why_missing = "iscsi-test-cu killed by signal %d" % (int(rc) - 128)
    if daemon_died == "1":
        why_missing += "; the daemon died during this suite"
    last_started = order[-1] if order else None

    def show(lines):
        for line in lines[:12]:
            print("    | " + line)

    # CU_ROUND names the run (e.g. the LUN's block size) in every line.
    tag = os.environ.get("CU_ROUND", "")
    for full in expected:
        short = full.rsplit(".", 1)[1]
        shown = "%s [%s]" % (full, tag) if tag else full
        reason = accepted_reason(entries, full)
        if short in results and results[short][0] == "passed":
            passed += 1
            sk = skip_reason(results[short][1])
            if sk is not None:
                skipped += 1
                print("PASS: conformance: %s (reported [SKIPPED]: %s)" % (shown, sk))
            else:
                print("PASS: conformance: %s" % shown)
            if reason is not None and sk is None and exact_entry(entries, full):
                xpass += 1
                print("NOTE: conformance: %s passes but is in accepted-failures.txt (%s): "
                      "remove it from the list" % (shown, reason))
            continue
        if short in results:
            detail = "failed"
            lines = results[short][1]
        else:
            detail = "no verdict (%s%s)" % (
                why_missing, ", it was running this test" if short == last_started else "")
            lines = results.get(short, (None, []))[1]
            if not lines and rc != "0" and not results:
                lines = [l for l in text.splitlines() if l.strip()][-6:]
        if reason is not None:
            accepted += 1
            print("ACCEPTED: conformance: %s %s -- %s" % (shown, detail, reason))
        else:
            failed += 1
            print("FAIL: conformance: %s %s" % (shown, detail))
            show(lines)
    suite_reason = accepted_reason(entries, suite + ".*")
    if (suite_reason is not None and expected and passed == len(expected) and skipped == 0
            and any(pattern == suite for pattern, _, _ in entries)):
        print("NOTE: conformance: every test of %s passes but the suite is in "
              "accepted-failures.txt (%s): remove it from the list" % (
                  suite + (" [%s]" % tag if tag else ""), suite_reason))
    unknown = [t for t in results if "%s.%s" % (suite, t) not in expected]
    for t in unknown:
        print("NOTE: conformance: %s.%s ran but is not in iscsi-test-cu --list" % (suite, t))
    # Cross-check with CUnit's own count so a parsing mistake cannot hide a failure.
    if summary is not None and not unknown:
        total, ran, s_passed, s_failed, _inactive = summary
        if (s_passed, s_failed) != (sum(1 for v in results.values() if v[0] == "passed"),
                                    sum(1 for v in results.values() if v[0] == "FAILED")):
            failed += 1
            print("FAIL: conformance: %s: parsed verdicts disagree with CUnit's summary "
                  "(%d passed, %d failed)" % (suite, s_passed, s_failed))
    with open(tally_path, "a") as f:
        f.write("%d %d %d %d %d\n" % (passed, failed, accepted, skipped, xpass))
    return 0


def main(argv):
    if len(argv) == 4 and argv[1] == "suites":
        for s in suites_of(read_list(argv[2]), argv[3]):
            print(s)
        return 0
    if len(argv) == 9 and argv[1] == "check":
        return check(*argv[2:])
    if len(argv) == 3 and argv[1] == "lint":
        _entries, errors = load_accepted(argv[2])
        for e in errors:
            print(e)
        return 1 if errors else 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
