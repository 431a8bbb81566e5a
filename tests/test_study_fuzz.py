"""Malformed studies by the hundred: the repository's own study files, mutated (values of other types,
keys deleted or misspelt, sections replaced, huge seed ranges), are each accepted or refused with a
StudyFileError that names the file, never another exception (hypothesis, derandomised: the same
examples in every run, so CI cannot flake)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.study.loading import MAX_CASES, StudyFileError, load_study
from tests.conftest import ROOT

BASES = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "configs").glob("*.yaml"))]
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.just({"start": 0, "stop": 10**12}),
    st.just([[]]),
    st.just("1e3"),
)
EXAMPLES = 300  # per run of the test; 8,000 mutated files were tried once by hand as well


def key_paths(doc, prefix=()):
    """Every (mapping or list) path of a parsed study, in document order."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield prefix + (key,)
        yield from key_paths(value, prefix + (key,))


@st.composite
def mutated_studies(draw):
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(key_paths(doc))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        kind = draw(st.sampled_from(["replace", "delete", "misspell"]))
        if kind == "replace" or not isinstance(parent, dict):
            parent[path[-1]] = copy.deepcopy(draw(ODD_VALUES))  # st.just's objects are shared
        elif kind == "delete":
            del parent[path[-1]]
        else:
            parent[f"{path[-1]}{draw(st.sampled_from(['s', '_', 'x']))}"] = parent.pop(path[-1])
    return doc


@pytest.mark.filterwarnings("ignore::harness.study.loading.StudyWarning")
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(doc=mutated_studies())
def test_a_mutated_study_is_accepted_or_refused_naming_its_file(doc, tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    try:
        cases = load_study(path)
    except StudyFileError as exc:
        assert str(path) in str(exc), str(exc)
    else:
        assert 0 < len(cases) <= MAX_CASES


def test_files_that_are_not_studies_are_refused_naming_the_file(tmp_path):
    files = {
        "empty.yaml": b"",
        "list.yaml": b"- a\n- b\n",
        "latin1.yaml": "name: caf\xe9\n".encode("latin-1"),
        "broken.yaml": b"name: [unclosed\n",
        "binary.yaml": b"\xff\xfe\x00\x01",
    }
    for name, content in files.items():
        path: Path = tmp_path / name
        path.write_bytes(content)
        try:
            load_study(path)
        except StudyFileError as exc:
            assert str(exc).startswith(f"{path}: "), str(exc)
        else:
            raise AssertionError(f"{name} was accepted")


def test_a_study_of_no_seeds_is_refused(tmp_path):
    """Found by scripts/fuzz_studies.py (20,000 mutations): ``seeds: []`` was accepted with no case."""
    study = copy.deepcopy(BASES[0])
    study["seeds"] = []
    path = tmp_path / "none.yaml"
    path.write_text(yaml.safe_dump(study))
    with pytest.raises(StudyFileError, match=r"key 'seeds': .*expected at least one seed"):
        load_study(path)


def test_a_study_of_too_many_cases_is_refused_before_it_is_expanded(tmp_path):
    study = copy.deepcopy(BASES[0])
    study["seeds"] = {"start": 0, "stop": 10**12}
    path = tmp_path / "huge.yaml"
    path.write_text(yaml.safe_dump(study))
    try:
        load_study(path)
    except StudyFileError as exc:
        assert f"expected at most {MAX_CASES} cases" in str(exc) and "'seeds'" in str(exc)
    else:
        raise AssertionError("a study of 10^12 seeds was accepted")
