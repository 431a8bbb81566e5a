"""Malformed studies by the thousand: the repository's study files mutated N times by the strategy of
tests/test_study_fuzz.py (values of other types, keys deleted or misspelt, sections replaced, huge
seed ranges), each loaded as a user's file would be. Prints how many were accepted, refused cleanly
(a StudyFileError naming the file) and anything else (a defect: a traceback, a crash).

    PYTHONPATH=. python scripts/fuzz_studies.py [N]     (default 5000; randomised, unlike the test)
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings

from harness.study.loading import MAX_CASES, StudyFileError, load_study
from tests.test_study_fuzz import mutated_studies


def main(n: int) -> None:
    counts: Counter = Counter()
    defects: list[str] = []
    where = Path(tempfile.mkdtemp()) / "study.yaml"

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(doc=mutated_studies())
    def try_one(doc):
        where.write_text(yaml.safe_dump(doc, allow_unicode=True))
        try:
            cases = load_study(where)
        except StudyFileError as exc:
            counts["refused cleanly" if str(where) in str(exc) else "refused without naming the file"] += 1
        except Exception as exc:  # a defect
            counts["crashed"] += 1
            defects.append(f"{type(exc).__name__}: {exc}")
        else:
            counts["accepted" if 0 < len(cases) <= MAX_CASES else "accepted with a bad case count"] += 1

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try_one()
    total = sum(counts.values())
    print(f"{total} mutated study files in {time.perf_counter() - start:.0f} s:")
    for outcome, k in counts.most_common():
        print(f"  {outcome}: {k}")
    for line in defects[:10]:
        print(f"  defect: {line[:300]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 5000)
