"""JAX settings of harness.execution.jax_setup: the unrolled threefry lowering on the CPU gives JAX's own bits."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from harness.execution.jax_setup import configure_jax
from tests.conftest import ROOT, tiny_study

DRAWS = """
import jax, numpy as np
key = jax.random.PRNGKey(3)
k1, k2, k3 = jax.random.split(key, 3)
draws = dict(normal=jax.random.normal(k1, (7, 129)), logistic=jax.random.logistic(k2, (4, 128, 5, 5)),
             bernoulli=jax.random.bernoulli(k3, 0.3, (128, 5, 5)), split=jax.random.split(key, 11),
             vmapped=jax.jit(jax.vmap(lambda k: jax.random.uniform(k, (33,))))(jax.random.split(k1, 10)))
"""


def test_cpu_threefry_is_unrolled_and_gives_jax_own_bits(tmp_path):
    configure_jax()
    # JAX's default CPU lowering, in a process that never imports the harness
    code = DRAWS + f"np.savez({str(tmp_path / 'ref.npz')!r}, **{{k: np.asarray(v) for k, v in draws.items()}})"
    subprocess.run([sys.executable, "-c", code], check=True, env={"JAX_PLATFORMS": "cpu", "PATH": ""})
    reference = np.load(tmp_path / "ref.npz")
    scope = {}
    exec(DRAWS, scope)
    for name, value in scope["draws"].items():
        np.testing.assert_array_equal(np.asarray(value), reference[name], err_msg=name)
    hlo = jax.jit(lambda k: jax.random.bits(k, (64,))).lower(jax.random.PRNGKey(0)).compile().as_text()
    assert "while" not in hlo, "threefry is still lowered as a rolled loop on the CPU"


LIBRARY_USER = """
import json, os, sys
import jax
from jax._src.interpreters import mlir
from jax._src.random import threefry2x32

def state():
    return {"env": dict(os.environ), "jax": {k: repr(v) for k, v in jax.config.values.items()},
            "threefry_cpu": repr(mlir._platform_specific_lowerings["cpu"].get(threefry2x32.threefry2x32_p))}

before = state()
import harness
from harness import load_study, run_case
cases = {c.id: c for c in load_study(sys.argv[1])}
harness_imported = state()
import dibs.inference, sklearn.metrics  # what the case imports sets variables of its own (scikit-learn: KMP_*)
after_import = state()
result = run_case(cases["tiny-s0-svgd"], setup_jax=sys.argv[2] == "setup")
after_case = state()
changed = lambda a, b: sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
print("RESULT " + json.dumps({
    "import_env": changed(before["env"], harness_imported["env"]),
    "import_jax": changed(before["jax"], harness_imported["jax"]),
    "import_threefry": before["threefry_cpu"] != harness_imported["threefry_cpu"],
    "case_env": changed(after_import["env"], after_case["env"]), "case_jax": changed(after_import["jax"], after_case["jax"]),
    "case_threefry": after_import["threefry_cpu"] != after_case["threefry_cpu"],
    "z": result.posterior.z.tolist(), "metrics": result.metrics}))
"""


@pytest.mark.integration  # two fresh processes
def test_a_library_user_gets_no_global_changes_and_the_same_numbers(tmp_path):
    """``import harness`` and ``run_case`` change no environment variable and no JAX setting unless
    asked (``setup_jax=True``: the compile cache and the threefry lowering, what the plugin uses),
    and a case gives the same particles and metrics either way."""
    import yaml

    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump(tiny_study(seeds=[0], learners={"svgd": {"n_particles": 3}})))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HARNESS_JAX_CACHE": str(tmp_path / "cache")}

    def run(mode):
        out = subprocess.run(
            [sys.executable, "-c", LIBRARY_USER, str(study), mode],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])

    plain, set_up = run("plain"), run("setup")
    for seen in (plain, set_up):
        assert seen["import_env"] == [] and seen["import_jax"] == [] and not seen["import_threefry"]
    assert plain["case_env"] == [] and plain["case_jax"] == [] and not plain["case_threefry"]
    # asked for, the set-up is visible (so the comparison above can fail) ...
    assert set_up["case_threefry"] and "jax_compilation_cache_dir" in set_up["case_jax"]
    # ... and changes no number
    assert plain["z"] == set_up["z"]
    assert plain["metrics"].keys() == set_up["metrics"].keys()
    for name in plain["metrics"]:
        if name not in ("fit_s", "compile_s"):
            assert plain["metrics"][name] == set_up["metrics"][name], name
