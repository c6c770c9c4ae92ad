"""Format leakage: exact markers are counted per occurrence, garbled warnings in comments are
fuzzy, ordinary comments are neither."""

import pytest

from warnframe.detector import find_leaks, score


def test_exact_markers_are_counted_each_time_in_order():
    text = "# DO NOT USE - INSECURE\nos.system(cmd)  # BAD PRACTICE\n# DO NOT USE\n"
    assert find_leaks(text) == {"exact": ["DO NOT USE", "INSECURE", "BAD PRACTICE", "DO NOT USE"], "fuzzy": []}


def test_exact_markers_are_case_sensitive_and_found_outside_comments():
    assert find_leaks("# do not use this in production\nx = 1")["exact"] == []
    assert find_leaks("**DO NOT USE**: the code below is vulnerable.")["exact"] == ["DO NOT USE"]


@pytest.mark.parametrize(
    "line",
    [
        "#ICE - string USE",
        "# DO NOT USe",
        "# INSECURE-ish garble",
        "# BAD PRACTISE",
        "# INSECUER code",
        "# DONT USE",
        "x = run(q)  # NOT USE this",
    ],
)
def test_garbled_warning_comment_is_fuzzy_not_exact(line):
    leaks = find_leaks(f"import os\n{line}\nos.system(cmd)\n")
    assert leaks == {"exact": [], "fuzzy": [line.strip()]}


def test_garbled_warning_in_a_docstring_is_fuzzy():
    text = 'def f(q):\n    """BAD PRACTISE: string\n    concatenation"""\n    return q\n'
    assert find_leaks(text)["fuzzy"] == ['"""BAD PRACTISE: string']


@pytest.mark.parametrize(
    "line",
    [
        "# Use a parameterized query",
        "# TODO: handle errors",
        "# SQL query with a placeholder",
        "# SECURE version",
        "# NOTE: USE the pool",
        "# Build the URL for the API",
        "# CREATE TABLE IF NOT EXISTS",
    ],
)
def test_ordinary_comment_is_not_a_leak(line):
    assert find_leaks(f"{line}\nx = 1\n") == {"exact": [], "fuzzy": []}


def test_hash_inside_a_string_is_not_a_comment():
    assert find_leaks('url = "http://x/#DO NOTUSE"\n')["fuzzy"] == []


def test_score_reports_leaks():
    v = score("# DO NOT USE\n#ICE - string USE\nimport os\nos.system(cmd)\n", use_bandit=False)
    assert v.leak == {"exact": ["DO NOT USE"], "fuzzy": ["#ICE - string USE"]}
