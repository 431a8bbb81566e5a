"""Study files: expansion into cases, ids, and every kind of bad input rejected with its culprit."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from dibs.kernel import JointAdditiveFrobeniusSEKernel

from harness.study.loading import StudyFileError, StudyWarning, id_part, load_cases, load_study
from harness.tracking.case_runs import case_tags
from tests.conftest import ROOT, tiny_study


def study(**changes):
    s = tiny_study(learners={"svgd": {"n_particles": 3}, "ensemble": {"n_members": 3}})
    s.update(changes)
    return s


def test_cases_are_seed_times_learner_with_design_ids(write_study):
    cases = load_study(write_study(study()))
    assert [c.id for c in cases] == ["tiny-s0-svgd", "tiny-s0-ensemble", "tiny-s1-svgd", "tiny-s1-ensemble"]
    assert {c.experiment for c in cases} == {"dibs_vs_ensembles"}


def test_sweep_is_a_cartesian_product_named_in_ids(write_study):
    s = study(sweep={"data.graph.type": ["er", "sf"], "data.graph.n_vars": [4, 6]}, seeds=[1])
    cases = load_study(write_study(s))
    ids = [c.id for c in cases]
    assert len(ids) == 8
    assert "tiny-sf-6-s1-ensemble" in ids and "tiny-er-4-s1-svgd" in ids
    case = next(c for c in cases if c.id == "tiny-sf-6-s1-svgd")
    assert case.config["data"]["graph"] == {"type": "sf", "n_vars": 6, "edges_per_node": 1}
    assert case.sweep_point == {"data.graph.type": "sf", "data.graph.n_vars": 6}


def test_name_defaults_to_file_stem_and_ids_are_safe(write_study):
    s = study(sweep={"data.model.obs_noise": [0.1, 1e-2]})
    del s["name"]
    cases = load_study(write_study(s, name="my_study.yaml"))
    assert cases[0].id.startswith("my_study-0.1-s0")
    assert all(set(c.id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") for c in cases)


def test_sweep_values_with_unsafe_characters_become_safe_id_parts():
    assert id_part("a b/c:d[e]") == "a_b_c_d_e_"
    assert id_part({"hidden_layers": [4, 3], "activation": "tanh"}) == "hidden_layers_4_3_activation_tanh"
    assert id_part(-1.5e-05) == "-1.5e-05"
    assert id_part("größe") == "gr__e"


def test_learner_keys_override_inference_and_defaults_are_filled(write_study):
    s = study(inference={"steps": 50, "stepsize": 0.01})
    s["learners"]["svgd"]["steps"] = 70
    cases = {c.learner: c for c in load_study(write_study(s))}
    assert cases["svgd"].settings["steps"] == 70
    assert cases["ensemble"].settings["steps"] == 50
    assert cases["ensemble"].settings["stepsize"] == 0.01
    # unset kernel bandwidths are dibs-lib's own defaults, read from its kernel class
    dibs_defaults = inspect.signature(JointAdditiveFrobeniusSEKernel.__init__).parameters
    assert cases["svgd"].settings["h_latent"] == dibs_defaults["h_latent"].default
    assert cases["svgd"].settings["h_theta"] == dibs_defaults["h_theta"].default
    assert "h_latent" not in cases["ensemble"].settings
    # a case's config has only its own learner's section and can be loaded as a study again
    assert list(cases["svgd"].config["learners"]) == ["svgd"]


def test_case_config_round_trips_as_a_study(write_study, tmp_path):

    case = load_study(write_study(study()))[0]
    again = load_study(write_study(case.config, name="again.yaml"))
    assert len(again) == 1 and again[0].config == case.config and again[0].config_hash == case.config_hash


def test_seed_range_and_marks(write_study):
    cases = load_study(write_study(study(seeds={"start": 2, "stop": 5}, marks=["smoke", "nightly"])))
    assert sorted({c.seed for c in cases}) == [2, 3, 4]
    assert cases[0].marks == ("smoke", "nightly")


def test_thresholds_travel_with_their_learner_only(write_study):
    s = study(thresholds={"svgd": {"eshd": {"max": 4.0}}, "ensemble": {"auroc": {"min": 0.7}}})
    cases = {c.learner: c for c in load_study(write_study(s))}
    assert cases["svgd"].thresholds == {"eshd": {"max": 4.0}}
    assert cases["ensemble"].thresholds == {"auroc": {"min": 0.7}}


def test_config_hash_is_stable_and_sensitive(write_study):
    a = load_study(write_study(study(), name="a.yaml"))[0]
    b = load_study(write_study(study(), name="b.yaml"))[0]
    c = load_study(write_study(study(inference={"steps": 21}), name="c.yaml"))[0]
    assert a.config_hash == b.config_hash != c.config_hash


def test_same_case_id_from_two_files_is_an_error(write_study, tmp_path):
    write_study(study(), name="one.yaml")
    write_study(study(), name="two.yaml")
    with pytest.raises(StudyFileError, match="tiny-s0-svgd.*also produced"):
        load_cases([str(tmp_path / "*.yaml")])


def test_missing_glob_is_an_error(tmp_path):
    with pytest.raises(StudyFileError, match="no study file matches"):
        load_cases([str(tmp_path / "nothing*.yaml")])


# --- bad input: each names the file, the key path and what was expected ----------------------


def _error(write_study, content) -> str:
    path = write_study(content)
    with pytest.raises(StudyFileError) as info:
        load_study(path)
    msg = str(info.value)
    assert msg.startswith(str(path)), msg
    return msg


def test_unknown_key_names_path_and_closest_valid_key(write_study):
    s = study()
    s["data"]["graph"]["n_var"] = 5
    msg = _error(write_study, s)
    assert "data.graph.n_var" in msg and "did you mean 'n_vars'" in msg


def test_unknown_top_level_key(write_study):
    msg = _error(write_study, study(learner={"svgd": {}}))
    assert "'learner'" in msg and "did you mean 'learners'" in msg


def test_unknown_key_in_model_union(write_study):
    s = study()
    s["data"]["model"]["obs_nois"] = 0.1
    msg = _error(write_study, s)
    assert "key 'data.model.obs_nois'" in msg and "did you mean 'obs_noise'" in msg


def test_unknown_key_in_learner_section(write_study):
    s = study()
    s["learners"]["svgd"]["n_particle"] = 3
    msg = _error(write_study, s)
    assert "learners.svgd.n_particle" in msg and "did you mean 'n_particles'" in msg


def test_wrong_type(write_study):
    s = study()
    s["data"]["n_observations"] = "many"
    msg = _error(write_study, s)
    assert "data.n_observations" in msg and "integer" in msg and "'many'" in msg


def test_out_of_range(write_study):
    s = study()
    s["data"]["interventions"]["perc_intervened"] = 1.5
    msg = _error(write_study, s)
    assert "data.interventions.perc_intervened" in msg and "less than or equal to 1" in msg


def test_infeasible_er_density(write_study):
    s = study()
    s["data"]["graph"] = {"type": "er", "n_vars": 5, "edges_per_node": 2}
    msg = _error(write_study, s)
    assert "data.graph" in msg and "edges_per_node must be below" in msg


def test_an_inference_key_no_learner_takes_is_refused(write_study):
    msg = _error(write_study, tiny_study(inference={"steps": 10}))  # only the random learner
    assert "key 'inference.steps': no learner of this study takes it (learners: random)" in msg
    msg = _error(write_study, tiny_study(sweep={"inference.steps": [5, 10]}))  # set by a sweep point
    assert "key 'inference.steps': no learner of this study takes it" in msg
    # a learner-specific key where that learner does not take it: svgd's kernel bandwidth for the ensemble
    msg = _error(write_study, tiny_study(learners={"ensemble": {"h_theta": 100.0}}))
    assert "key 'learners.ensemble.h_theta': unknown key" in msg
    # taken by one learner of the study: fine
    cases = load_study(write_study(tiny_study(learners={"random": {}, "svgd": {}}, inference={"steps": 7})))
    assert {c.learner: c.settings.get("steps") for c in cases if c.seed == 0} == {"random": None, "svgd": 7}


def test_standardize_on_synthetic_data_is_refused(write_study):
    for value in (True, False):
        s = study()
        s["data"]["standardize"] = value
        msg = _error(write_study, s)
        assert "key 'data'" in msg and "`standardize` applies to a real `dataset` only" in msg


def test_different_particle_budgets_warn_at_collection_and_tag_the_cases(write_study):
    s = study()
    s["learners"]["ensemble"]["n_members"] = 4
    with pytest.warns(StudyWarning, match="svgd has n_particles = 3 but ensemble has n_members = 4"):
        cases = load_study(write_study(s))
    assert {c.notes["budget_mismatch"] for c in cases} == {
        "svgd has n_particles = 3 but ensemble has n_members = 4: the comparison of the two is not like for like"
    }
    assert case_tags(cases[0], "cpu", "main")["budget_mismatch"] == cases[0].notes["budget_mismatch"]
    # a sweep over the budget: the points that differ warn, the others do not
    s = study(sweep={"learners.ensemble.n_members": [3, 5]})
    with pytest.warns(StudyWarning) as caught:
        cases = load_study(write_study(s))
    assert [str(w.message).split(": ", 1)[1].split(":")[0] for w in caught] == [
        "svgd has n_particles = 3 but ensemble has n_members = 5"
    ]
    assert {c.id: "budget_mismatch" in c.notes for c in cases if c.seed == 0} == {
        "tiny-3-s0-svgd": False,
        "tiny-3-s0-ensemble": False,
        "tiny-5-s0-svgd": True,
        "tiny-5-s0-ensemble": True,
    }
    assert "budget_mismatch" not in case_tags(cases[0], "cpu", "main")


def test_unknown_model_type(write_study):
    s = study()
    s["data"]["model"]["type"] = "linear"
    msg = _error(write_study, s)
    assert "data.model" in msg and "linear_gaussian" in msg


def test_unknown_learner(write_study):
    msg = _error(write_study, study(learners={"svdg": {}}))
    assert "learners.svdg" in msg and "did you mean 'svgd'" in msg


def test_threshold_on_unknown_metric(write_study):
    msg = _error(write_study, study(thresholds={"svgd": {"esdh": {"max": 3}}}))
    assert "thresholds.svgd.esdh" in msg and "did you mean 'eshd'" in msg


def test_threshold_on_learner_not_in_study(write_study):
    msg = _error(write_study, study(thresholds={"random": {"eshd": {"max": 3}}}))
    assert "thresholds.random" in msg and "no learner 'random'" in msg


def test_threshold_without_bound(write_study):
    msg = _error(write_study, study(thresholds={"svgd": {"eshd": {}}}))
    assert "thresholds.svgd.eshd" in msg and "min" in msg and "max" in msg


def test_empty_sweep(write_study):
    msg = _error(write_study, study(sweep={"data.graph.n_vars": []}))
    assert "sweep.data.graph.n_vars" in msg and "non-empty list" in msg


def test_sweep_over_unknown_key(write_study):
    msg = _error(write_study, study(sweep={"data.graph.n_var": [4, 5]}))
    assert "data.graph.n_var" in msg and "did you mean 'n_vars'" in msg and "sweep point" in msg


def test_sweep_over_invalid_value(write_study):
    msg = _error(write_study, study(sweep={"data.graph.n_vars": [4, 1]}))
    assert "data.graph.n_vars" in msg and "greater than or equal to 2" in msg and "sweep point" in msg


def test_sweep_over_seeds_is_refused(write_study):
    msg = _error(write_study, study(sweep={"seeds": [[0], [1]]}))
    assert "sweep.seeds" in msg and "cannot be swept" in msg


def test_sweep_not_a_mapping(write_study):
    msg = _error(write_study, study(sweep=["data.graph.n_vars"]))
    assert "key 'sweep'" in msg


def test_broken_yaml(write_study):
    msg = _error(write_study, "name: x\ndata: {graph: [\n")
    assert "broken YAML" in msg and "line" in msg


def test_empty_file(write_study):
    msg = _error(write_study, "")
    assert "expected a mapping" in msg and "empty file" in msg


def test_missing_required_section(write_study):
    s = study()
    del s["data"]
    msg = _error(write_study, s)
    assert "key 'data'" in msg and "missing" in msg


def test_collecting_the_benchmarks_imports_neither_jax_nor_mlflow():
    """``pytest benchmarks --collect-only`` (every study loaded, the plugin's hooks run) stays light:
    no JAX, no MLflow. How long it takes is a figure of ``scripts/bench_speed.py`` (collection
    section), not a test: it depends on the machine."""
    code = (
        "import sys, pytest; rc = pytest.main(['benchmarks', '--collect-only', '-q']);"
        "print('RESULT', rc, *sorted(m for m in ('jax', 'mlflow', 'scipy.stats', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    result = out.strip().splitlines()[-1].split()
    assert result == ["RESULT", "0"], out[-2000:]
    assert "benchmarks/test_studies.py::test_case[smoke-s0-svgd]" in out


def test_overrides_are_yaml_apply_to_every_case_change_the_hash_and_are_validated(write_study):
    from harness.study.loading import parse_overrides

    overrides = parse_overrides(["inference.steps=10", "seeds=[1]", "data.model.obs_noise=0.01"])
    assert overrides == {"inference.steps": 10, "seeds": [1], "data.model.obs_noise": 0.01}
    path = write_study(study())
    plain = {c.learner: c for c in load_study(path) if c.seed == 1}
    changed = load_study(path, overrides)
    assert {c.seed for c in changed} == {1}
    for case in changed:
        assert case.settings["steps"] == 10 and case.config["data"]["model"]["obs_noise"] == 0.01
        assert case.config_hash != plain[case.learner].config_hash
    with pytest.raises(StudyFileError, match=r"--override 'steps': expected KEY=VALUE"):
        parse_overrides(["steps"])
    with pytest.raises(StudyFileError, match=r"--override 'seeds=\[1': the value is not valid YAML"):
        parse_overrides(["seeds=[1"])
    with pytest.raises(StudyFileError, match=rf"{path}.*inference.steps"):
        load_study(path, {"inference.steps": "many"})


def test_configs_accepts_files_folders_globs_repeated_without_duplicates(tmp_path):
    from harness.study.loading import resolve_study_paths

    (tmp_path / "sub").mkdir()
    a, b, c = tmp_path / "a.yaml", tmp_path / "sub" / "b.yaml", tmp_path / "sub" / "c.yaml"
    for p in (a, b, c):
        p.write_text("name: x\n")
    (tmp_path / "sub" / "notes.txt").write_text("not a study")
    # a folder means its *.yaml; the same file named twice (directly, by glob, by folder) counts once
    assert resolve_study_paths([tmp_path / "sub", a, str(tmp_path / "*.yaml"), b]) == [a, b, c]
    with pytest.raises(StudyFileError, match=r"missing\.yaml: no study file matches"):
        resolve_study_paths([a, tmp_path / "missing.yaml"])


@pytest.mark.parametrize(
    "path, model, alpha_linear, h_theta",
    [
        ("configs/dibs_vs_ensemble.yaml", "nonlinear_gaussian", 0.02, 1000.0),  # config/svgd.py: fcgauss, 20
        ("configs/dibs_vs_ensemble_linear.yaml", "linear_gaussian", 0.2, 500.0),  # config/svgd.py: lingauss, 20
    ],
)
def test_paper_studies_use_the_values_of_the_papers_code(path, model, alpha_linear, h_theta):
    """The values of larslorch/dibs (branch full): config/svgd.py's joint_config[...][20] and the
    evaluation defaults of dibs/eval/parser.py, as the study files cite them."""
    cases = load_study(ROOT / path)
    assert len(cases) == 2 * 30 * 2 and all("paper" in c.marks for c in cases)  # 30 networks per graph type
    assert {c.config["data"]["graph"]["type"] for c in cases} == {"er", "sf"}
    for case in cases:
        data, s = case.config["data"], case.settings
        assert data["graph"]["n_vars"] == 20 and data["graph"]["edges_per_node"] == 2
        assert data["model"]["type"] == model and data["model"]["obs_noise"] == 0.1
        assert (data["n_observations"], data["n_ho_observations"]) == (100, 100)
        assert data["interventions"] == {"n_sets": 10, "perc_intervened": 0.2, "value": 0.0, "n_samples": None}
        assert (s["steps"], s["n_dim"], s["alpha_linear"], s["beta_linear"]) == (3000, 20, alpha_linear, 1.0)
        assert (s["n_grad_mc_samples"], s["n_acyclicity_mc_samples"], s["optimizer"], s["stepsize"]) == (
            128,
            32,
            "rmsprop",
            0.005,
        )
        assert (s["tau"], s["score_function_baseline"], s["grad_estimator_z"]) == (1.0, 0.0, "reparam")
        if case.learner == "svgd":
            assert (s["n_particles"], s["h_latent"], s["h_theta"]) == (30, 5.0, h_theta)
        else:
            assert s["n_members"] == 30 and "budget_mismatch" not in case.notes
    if model == "nonlinear_gaussian":
        assert cases[0].config["data"]["model"]["hidden_layers"] == [5]
    else:  # the paper's weights have no minimum magnitude (LinearGaussianGaussian.sample_parameters)
        assert cases[0].config["data"]["model"]["min_edge"] == 0.0


def exact_study(**data_changes):
    s = tiny_study(learners={"random": {"n_particles": 3}, "exact": {"n_particles": 3}})
    s["data"]["exact_posterior"] = True
    s["data"].update(data_changes)
    return s


def test_exact_posterior_study_cases_and_refusals_name_file_and_key(write_study):
    cases = load_study(write_study(exact_study()))
    assert [c.id for c in cases if c.seed == 0] == ["tiny-s0-random", "tiny-s0-exact"]
    assert all(c.config["data"]["exact_posterior"] is True for c in cases)
    # nonlinear model, too many variables (also when a sweep point sets them), real data
    msg = _error(write_study, exact_study(model={"type": "nonlinear_gaussian"}))
    assert ": key 'data.exact_posterior': the exact posterior is not available here:" in msg
    assert "model type 'nonlinear_gaussian' has no closed-form marginal likelihood; expected linear_gaussian" in msg
    msg = _error(write_study, exact_study(graph={"type": "er", "n_vars": 21, "edges_per_node": 1}))
    assert "key 'data.exact_posterior'" in msg and "n_vars = 21 is above the limit of 20 variables" in msg
    msg = _error(write_study, {**exact_study(), "sweep": {"data.graph.n_vars": [4, 21]}})
    assert "(sweep point {'data.graph.n_vars': 21}): key 'data.exact_posterior'" in msg
    # beyond enumeration the exact posterior is the dynamic programme's, for the metrics; the exact
    # learner (a sampler of the enumerated posterior) is refused there
    msg = _error(write_study, exact_study(graph={"type": "er", "n_vars": 7, "edges_per_node": 1}))
    assert "key 'learners.exact': the exact learner draws from the enumerated posterior, n_vars <= 6" in msg
    # real data: allowed under a closed-form model (the learners' posterior is defined whatever made the data)
    real = exact_study(dataset="sachs", n_observations=100, interventions={"n_sets": 0})
    del real["data"]["graph"]
    real["learners"] = {"random": {"n_particles": 3}}
    assert len(load_study(write_study(real))) == len(real["seeds"])


def test_the_exact_learner_needs_the_switch(write_study):
    s = exact_study()
    s["data"]["exact_posterior"] = False
    msg = _error(write_study, s)
    assert "key 'learners.exact': the exact learner samples the exact posterior: set data.exact_posterior: true" in msg


def test_a_switch_that_is_off_stays_out_of_the_case_config_and_its_hash(write_study):
    """Adding ``data.exact_posterior`` kept every earlier case's config hash (baselines, --reuse)."""
    plain = load_study(write_study(tiny_study()))[0]
    off = tiny_study()
    off["data"]["exact_posterior"] = False
    explicit = load_study(write_study(off, "off.yaml"))[0]
    assert "exact_posterior" not in plain.config["data"]
    assert explicit.config_hash == plain.config_hash
    on = load_study(write_study(exact_study(), "on.yaml"))[0]
    assert on.config_hash != plain.config_hash


def test_no_held_out_rows_and_a_fixed_split_are_for_real_data_only(write_study):
    s = study()
    s["data"]["n_ho_observations"] = 0
    assert "synthetic data need held-out rows (n_ho_observations >= 1)" in _error(write_study, s)
    s = study()
    s["data"]["split_seed"] = 3
    assert "`split_seed` applies to a real `dataset` only" in _error(write_study, s)
