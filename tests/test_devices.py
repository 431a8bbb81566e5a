"""Worker-to-device mapping and the environment it produces, without a GPU."""

from __future__ import annotations

from harness.execution.devices import THREAD_VARS, cpu_share, detect_gpus, parse_gpu_list, worker_env, worker_index


def test_worker_index_from_xdist_ids():
    assert [worker_index(w) for w in ("gw0", "gw3", "gw12", "master", "")] == [0, 3, 12, 0, 0]


def test_gpu_list_parsing():
    assert parse_gpu_list("0,2") == ["0", "2"]
    assert parse_gpu_list(" 1 , 3 ,") == ["1", "3"]
    assert parse_gpu_list("") == [] and parse_gpu_list("-1") == []
    assert parse_gpu_list(None) is None


def test_visible_devices_decide_the_gpu_list():
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": "4,5"}) == ["4", "5"]
    assert detect_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_worker_i_gets_gpu_i_mod_n():
    gpus = ["0", "2", "3"]
    picked = [worker_env(i, 5, gpus, [0, 1])[0]["CUDA_VISIBLE_DEVICES"] for i in range(5)]
    assert picked == ["0", "2", "3", "0", "2"]


def test_workers_sharing_a_gpu_do_not_preallocate():
    shared, _ = worker_env(0, 4, ["0", "1"], [0])  # GPU 0 serves workers 0 and 2
    alone, _ = worker_env(2, 3, ["0", "1", "5"], [0])  # GPU 5 serves worker 2 only
    assert shared["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in alone
    assert shared["HARNESS_DEVICE"] == "gpu:0" and alone["HARNESS_DEVICE"] == "gpu:5"


def test_cpu_workers_split_the_cores_without_oversubscribing():
    cores = list(range(8))
    shares = [cpu_share(i, 4, cores) for i in range(4)]
    assert shares == [[0, 1], [2, 3], [4, 5], [6, 7]]
    env, affinity = worker_env(1, 4, [], cores)
    assert affinity == [2, 3] and env["JAX_PLATFORMS"] == "cpu"
    assert all(env[v] == "2" for v in THREAD_VARS)
    # more workers than cores: one core each, round-robin
    assert [cpu_share(i, 3, [0, 1]) for i in range(3)] == [[0], [1], [0]]


def test_a_replacement_worker_gets_a_valid_share():
    """xdist names a worker that replaces a dead one gw<count> (gw2 of 2): it still gets cores,
    and thread variables that are not 0 (it used to get an empty core list)."""
    assert cpu_share(2, 2, [0, 1, 2, 3]) == [0, 1]
    assert cpu_share(5, 2, [0, 1, 2, 3]) == [2, 3]
    env, affinity = worker_env(2, 2, [], [0, 1])
    assert affinity == [0] and all(env[v] == "1" for v in THREAD_VARS)
    gpu_env, _ = worker_env(2, 2, ["0"], [0, 1])
    assert gpu_env["CUDA_VISIBLE_DEVICES"] == "0"
