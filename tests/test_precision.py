"""inference.dtype: float64 cases run in JAX's 64-bit mode for the case only; the float32 and float64
cases of a seed see the same data; a process that ran a float64 case gives a float32 case exactly
the numbers that case has alone."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness import load_study, run_case
from harness.study.loading import StudyFileError
from tests.conftest import ROOT, tiny_study

RUN = r"""
import json, sys
import jax
from harness import load_study, run_case
out = []
for dtype in sys.argv[2:]:
    case = next(c for c in load_study(sys.argv[1], {"inference.dtype": dtype}) if c.learner == "svgd")
    r = run_case(case)
    out.append({"dtype": dtype, "z": r.posterior.z.tolist(), "metrics": r.metrics,
                "x64_after": bool(jax.config.jax_enable_x64)})
print(json.dumps(out))
"""


@pytest.fixture
def study_path(write_study):
    return write_study(tiny_study(seeds=[0], learners={"svgd": {"n_particles": 3}}))


def run_in_fresh_process(path, *dtypes) -> list[dict]:
    proc = subprocess.run([sys.executable, "-c", RUN, str(path), *dtypes], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_float32_case_after_a_float64_case_has_the_numbers_it_has_alone(study_path):
    (alone,) = run_in_fresh_process(study_path, "float32")
    after_64, again = run_in_fresh_process(study_path, "float64", "float32")
    assert again["z"] == alone["z"]  # bit for bit
    assert again["metrics"] | {"fit_s": 0, "compile_s": 0} == alone["metrics"] | {"fit_s": 0, "compile_s": 0}
    assert after_64["x64_after"] is False and again["x64_after"] is False  # the switch was for the case only
    assert after_64["z"] != alone["z"]


def test_float64_cases_see_the_same_data_cast_and_compute_in_float64(study_path):
    f32 = next(c for c in load_study(study_path) if c.learner == "svgd")
    f64 = next(c for c in load_study(study_path, {"inference.dtype": "float64"}) if c.learner == "svgd")
    assert f64.config_hash != f32.config_hash and f64.config["inference"]["dtype"] == "float64"
    assert "dtype" not in f32.config["inference"]  # the default stays out: earlier hashes hold
    r32, r64 = run_case(f32), run_case(f64)
    np.testing.assert_array_equal(r64.dataset.x, r32.dataset.x.astype(np.float64))
    np.testing.assert_array_equal(r64.dataset.x_ho, r32.dataset.x_ho.astype(np.float64))
    assert r64.dataset.x.dtype == np.float64 and r32.dataset.x.dtype == np.float32
    assert r64.dataset.x_ho.dtype == np.float64 and r32.dataset.x_ho.dtype == np.float32  # (equal values hid it)
    assert all(s.x.dtype == np.float64 for s in r64.dataset.interventions)
    assert r64.posterior.z.dtype == np.float64 and r32.posterior.z.dtype == np.float32
    assert np.asarray(r64.posterior.theta).dtype == np.float64


def test_dtype_is_study_wide_not_a_learner_key(write_study):
    # taken by every learner, also one without DiBS settings
    cases = load_study(write_study(tiny_study(inference={"dtype": "float64"})))
    assert {c.config["inference"]["dtype"] for c in cases} == {"float64"}
    path = write_study(tiny_study(learners={"svgd": {"dtype": "float64"}}))
    with pytest.raises(StudyFileError, match="key 'learners.svgd.dtype': unknown key"):
        load_study(path)
    path = write_study(tiny_study(inference={"dtype": "float16"}))
    with pytest.raises(StudyFileError, match="key 'inference.dtype'"):
        load_study(path)
