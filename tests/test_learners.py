"""Learners on small problems: the vectorised ensemble, compile-once, determinism, the baseline."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import pytest
from dibs.inference.dibs import DiBS

from harness import load_study, run_case
from harness.data import make_dataset
from harness.data.dataset import case_keys
from harness.learners import _compiled, _dibs
from harness.learners import random as random_learner
from tests.conftest import ROOT, TINY

SMALL = {"steps": 25, "n_grad_mc_samples": 8, "n_acyclicity_mc_samples": 4}


def _problem(data, settings):
    from harness.learners.ensemble import Settings

    s = Settings.model_validate({**SMALL, **settings}).model_dump()
    return _dibs.Problem.build(data, s, data["graph"]["n_vars"])


@pytest.fixture(scope="module")
def tiny_case_config():
    s = copy.deepcopy(TINY)
    s["learners"] = {"ensemble": {"n_members": 3, **SMALL}, "svgd": {"n_particles": 3, **SMALL}}
    return s


@pytest.fixture(scope="module")
def cases(tiny_case_config, tmp_path_factory):
    import yaml

    path = tmp_path_factory.mktemp("study") / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_case_config))
    return {c.id: c for c in load_study(path)}


def test_vectorised_ensemble_equals_members_run_one_by_one(cases):
    case = cases["tiny-s0-ensemble"]
    data = make_dataset(case.config["data"], 0)
    problem = _problem(case.config["data"], {"n_members": 3})
    _, key = case_keys(0)
    together = _dibs.fit_ensemble(problem, 3, 25, data, key)
    alone = _dibs.fit_members_one_by_one(problem, 3, 25, data, key)
    np.testing.assert_allclose(together.z, alone.z, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(together.theta, alone.theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(together.g, alone.g)
    # the members really are different particles (own keys, own initialisation)
    assert not np.allclose(together.z[0], together.z[1])


def test_ensemble_members_do_not_interact(cases):
    """Member i's trajectory does not depend on the other members: a 2-member ensemble's first
    two members equal the first two members of a 3-member one when they get the same keys."""
    case = cases["tiny-s0-ensemble"]
    data = make_dataset(case.config["data"], 0)
    problem = _problem(case.config["data"], {})
    x, mask = _dibs._data(data)
    keys = _dibs.member_keys(case_keys(0)[1], 3)
    timer = _dibs.Timer()
    three = _dibs.run_chunked(
        _dibs.ensemble_loop, problem, 25, _dibs.ensemble_init(problem, keys, x, mask), x, mask, timer
    )
    two = _dibs.run_chunked(
        _dibs.ensemble_loop, problem, 25, _dibs.ensemble_init(problem, keys[:2], x, mask), x, mask, timer
    )
    np.testing.assert_allclose(problem.get_params(three[0])[:2], problem.get_params(two[0]), rtol=1e-4, atol=1e-5)


class _Received(Exception):
    pass


def test_svgd_and_ensemble_of_a_seed_see_the_same_data_and_key(cases, monkeypatch):
    """Through ``run_case`` itself: what each learner's ``fit`` receives (stopped right there)."""
    from harness.learners import ensemble, svgd

    received = {}

    def capture(name):
        def fit(dataset, config, settings, key, monitor=None):
            received[name] = (dataset, np.asarray(key))
            raise _Received

        return fit

    monkeypatch.setattr(svgd, "fit", capture("svgd"))
    monkeypatch.setattr(ensemble, "fit", capture("ensemble"))
    runs = {"s1-svgd": "tiny-s1-svgd", "s1-ensemble": "tiny-s1-ensemble", "s0-svgd": "tiny-s0-svgd"}
    seen = {}
    for label, case_id in runs.items():
        with pytest.raises(_Received):
            run_case(cases[case_id])
        seen[label] = received.pop(case_id.rsplit("-", 1)[1])
    (a, key_a), (b, key_b), (c, key_c) = seen["s1-svgd"], seen["s1-ensemble"], seen["s0-svgd"]
    np.testing.assert_array_equal(a.x, b.x)
    np.testing.assert_array_equal(a.x_ho, b.x_ho)
    np.testing.assert_array_equal(a.g, b.g)
    np.testing.assert_array_equal(key_a, key_b)
    assert not np.array_equal(a.x, c.x) and not np.array_equal(key_a, key_c)


def test_cases_differing_in_seed_reuse_the_compiled_loop(cases):
    first = run_case(cases["tiny-s0-svgd"])
    n_exe = len(_compiled._EXECUTABLES)
    second = run_case(cases["tiny-s1-svgd"])
    assert len(_compiled._EXECUTABLES) == n_exe
    assert second.metrics["compile_s"] == 0.0
    again = run_case(cases["tiny-s0-svgd"])
    np.testing.assert_array_equal(first.posterior.z, again.posterior.z)
    assert first.metrics == {**again.metrics, "fit_s": first.metrics["fit_s"], "compile_s": first.metrics["compile_s"]}


def test_posterior_shapes(cases):
    for learner, m in (("svgd", 3), ("ensemble", 3)):
        post = run_case(cases[f"tiny-s0-{learner}"]).posterior
        d = 4
        assert post.z.shape == (m, d, d, 2)
        assert post.g.shape == (m, d, d) and post.g.dtype == np.int32
        assert post.theta.shape == (m, d, d)
        np.testing.assert_allclose(np.exp(post.log_weights).sum(), 1.0)
        # g is what dibs-lib itself reads off z at alpha = infinity (its method uses no instance state)
        np.testing.assert_array_equal(post.g, np.asarray(DiBS.particle_to_g_lim(None, post.z)))


def test_random_learner_gives_equally_weighted_dags_without_latents(cases):
    case = cases["tiny-s0-svgd"]
    data = make_dataset(case.config["data"], 0)
    post = random_learner.fit(data, case.config, random_learner.Settings(n_particles=50), case_keys(0)[1])
    from harness.models.graphs import is_cyclic

    assert not is_cyclic(post.g).any()
    off = ~np.eye(4, dtype=bool)
    assert post.z is None
    np.testing.assert_allclose(post.log_weights, np.log(np.full(50, 1 / 50)))
    # edge density near the ER prior's p = edges_per_node * d / (d (d - 1) / 2) = 2/3
    density = post.g[:, off].mean() * 2  # each node pair has one possible direction in a DAG
    assert 0.45 < density < 0.85


PERSISTENT = """
import json, sys
import jax.monitoring
from harness import load_study, run_case
counts = {"/jax/compilation_cache/cache_hits": 0, "/jax/compilation_cache/cache_misses": 0}
jax.monitoring.register_event_listener(
    lambda event, **kw: event in counts and counts.__setitem__(event, counts[event] + 1))
case = [c for c in load_study(sys.argv[1]) if c.id == "tiny-s0-svgd"][0]
r = run_case(case, setup_jax=True)
print(json.dumps({"z": r.posterior.z.tolist(), "cache_hits": counts["/jax/compilation_cache/cache_hits"],
                  "cache_writes": counts["/jax/compilation_cache/cache_misses"]}))
"""


@pytest.mark.integration  # fresh processes, each a pytest session's worth of start-up
def test_persistent_cache_skips_compiling_and_changes_nothing(tiny_case_config, tmp_path):
    import yaml

    study = tmp_path / "tiny.yaml"
    study.write_text(yaml.safe_dump(tiny_case_config))

    def run(cache):
        env = {"HARNESS_JAX_CACHE": cache, "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        out = subprocess.run(
            [sys.executable, "-c", PERSISTENT, str(study)],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold = run(str(tmp_path / "cache"))
    warm = run(str(tmp_path / "cache"))
    off = run("off")
    assert cold["z"] == warm["z"] == off["z"]
    # counted by JAX itself, whatever this machine's compile speed: the cold session compiles and
    # writes its programs to the cache, the warm one loads them (more hits, fewer writes). Every
    # program is cached, so a session can also hit what it wrote itself: cold hits need not be 0.
    assert cold["cache_writes"] >= 1 and warm["cache_hits"] > cold["cache_hits"]
    assert warm["cache_writes"] < cold["cache_writes"]
    assert off["cache_hits"] == off["cache_writes"] == 0
    assert any((tmp_path / "cache").iterdir())


def test_chunk_lengths():
    from harness.learners._compiled import chunk_lengths

    assert chunk_lengths(0) == [] and chunk_lengths(40) == [40]
    assert chunk_lengths(1000) == [100] * 10 and chunk_lengths(3000) == [100] * 30
    assert chunk_lengths(250) == [50] * 5
    assert chunk_lengths(997) == [100] * 9 + [97]  # a prime: one extra executable for the rest
    assert chunk_lengths(100, every=30) == [30, 30, 30, 10]


def test_curves_and_chunking_do_not_change_the_result(cases):

    from harness.execution.monitor import Monitor

    case = cases["tiny-s0-ensemble"]
    data = make_dataset(case.config["data"], 0)
    problem = _problem(case.config["data"], {})
    key = case_keys(0)[1]
    plain = _dibs.fit_ensemble(problem, 3, 25, data, key)
    seen = []
    monitor = Monitor(eval_every=5, evaluate=lambda z, theta: seen.append(z.copy()) or {"n": len(seen)})
    watched = _dibs.fit_ensemble(problem, 3, 25, data, key, monitor)
    np.testing.assert_array_equal(plain.z, watched.z)
    assert [step for step, _ in monitor.history] == [5, 10, 15, 20, 25]
    np.testing.assert_array_equal(seen[-1], watched.z)


def test_study_settings_reach_dibs_lib(write_study):
    """h_latent, h_theta, n_dim and optimizer: gd, set in a study file, are what dibs-lib's JointDiBS
    is built with (not only validated and logged)."""
    import jax.numpy as jnp

    s = copy.deepcopy(TINY)
    s["learners"] = {
        "svgd": {"n_particles": 2, "h_latent": 3.0, "h_theta": 7.0, "n_dim": 2, "optimizer": "gd", "stepsize": 0.01}
    }
    (case,) = [c for c in load_study(write_study(s)) if c.seed == 0]
    data = case.config["data"]
    d = data["graph"]["n_vars"]
    problem = _dibs.Problem.build(data, case.settings, d)
    x, mask = jnp.zeros((5, d)), jnp.zeros((5, d), jnp.int32)
    dibs = problem.dibs(x, mask)
    assert (dibs.kernel.h_latent, dibs.kernel.h_theta) == (3.0, 7.0)
    opt_z, *_ = _dibs.svgd_init(problem, 2, case_keys(0)[1], x, mask)
    assert problem.get_params(opt_z).shape == (2, d, 2, 2)  # latent dimension k = n_dim
    # plain gradient steps (rmsprop would divide by a running RMS: 1 - 0.01 / sqrt(0.1) here)
    moved = dibs.get_params(dibs.opt_update(0, jnp.ones(3), dibs.opt_init(jnp.ones(3))))
    np.testing.assert_allclose(moved, 1 - 0.01, rtol=1e-6)


@pytest.mark.parametrize("optimizer", ["rmsprop", "gd"])
def test_each_ensemble_member_is_dibs_lib_joint_dibs_with_one_particle(cases, optimizer):
    """An independent reference: member m equals dibs-lib's own ``JointDiBS.sample`` with
    ``n_particles=1``, the member's key and the same settings (dibs-lib's likelihood classes on
    both sides). With one particle SVGD's kernel term is k(x, x) times the posterior gradient
    (k(x, x) = 2 for the additive kernel: scale 1 for Z plus 1 for Θ; its gradient is 0 at x = x).
    rmsprop divides that factor out; plain gradient steps (``optimizer: gd``) do not, so there
    JointDiBS of one particle moves twice as far per step and the two differ (documented)."""
    from dibs.inference import JointDiBS

    case = cases["tiny-s0-ensemble"]
    data = make_dataset(case.config["data"], 0)
    problem = _problem(case.config["data"], {"likelihood_impl": "dibs", "optimizer": optimizer, "stepsize": 0.005})
    _, key = case_keys(0)
    ensemble = _dibs.fit_ensemble(problem, 3, 25, data, key)
    x, mask = _dibs._data(data)
    for m, member_key in enumerate(_dibs.member_keys(key, 3)):
        dibs = problem.dibs(x, mask)
        assert isinstance(dibs, JointDiBS) and type(dibs).__module__.startswith("dibs.")
        seen = {}  # sample returns G and Θ; its callback sees the latents Z
        g, theta = dibs.sample(
            key=member_key,
            n_particles=1,
            steps=25,
            n_dim_particles=problem.n_dim,
            callback=lambda zs, **_: seen.update(z=np.asarray(zs)),  # noqa: B023 - called at once, within the iteration
        )
        if optimizer == "rmsprop":
            np.testing.assert_allclose(ensemble.z[m], seen["z"][0], rtol=1e-3, atol=1e-4)
            np.testing.assert_allclose(ensemble.theta[m], theta[0], rtol=1e-3, atol=1e-4)
            np.testing.assert_array_equal(ensemble.g[m], g[0])
        else:
            assert not np.allclose(ensemble.z[m], seen["z"][0], rtol=1e-3, atol=1e-4)


def test_each_ensemble_member_under_bge_is_dibs_lib_marginal_dibs_with_one_particle(cases):
    """Under a marginal model (``inference.model: {type: bge}``) a member is dibs-lib's own
    ``MarginalDiBS.sample`` with one particle and the member's key (the kernel on Z alone: k(x, x) =
    1, and rmsprop)."""
    from dibs.inference import MarginalDiBS

    case = cases["tiny-s0-ensemble"]
    data = make_dataset(case.config["data"], 0)
    settings = {**case.settings, "stepsize": 0.005}
    problem = _dibs.Problem.build(
        case.config["data"], settings, 4, {"type": "bge", "alpha_mu": 1.0, "alpha_lambda": None, "mean_obs": 0.0}
    )
    assert problem.marginal
    _, key = case_keys(0)
    ensemble = _dibs.fit_ensemble(problem, 3, 25, data, key)
    assert ensemble.theta is None
    x, mask = _dibs._data(data)
    for m, member_key in enumerate(_dibs.member_keys(key, 3)):
        dibs = problem.dibs(x, mask)
        assert isinstance(dibs, MarginalDiBS)
        seen = {}
        g = dibs.sample(
            key=member_key,
            n_particles=1,
            steps=25,
            n_dim_particles=problem.n_dim,
            callback=lambda zs, seen=seen, **_: seen.update(z=np.asarray(zs)),
        )
        np.testing.assert_allclose(ensemble.z[m], seen["z"][0], rtol=1e-3, atol=1e-4)
        np.testing.assert_array_equal(ensemble.g[m], g[0])
