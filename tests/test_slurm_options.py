"""``--slurm KEY=VALUE`` as submitit's parameters, and whether the array's tasks get a GPU."""

from __future__ import annotations

import pytest

from harness.execution.slurm import SlurmError, asks_for_gpu, parse_parameters


def test_generic_and_slurm_keys_become_submitit_parameters_with_yaml_values():
    params = parse_parameters(
        [
            "partition=gpu",
            "timeout_min=600",
            "gpus_per_node=1",
            "array_parallelism=16",
            'setup=["module load cuda", "echo hi"]',
        ]
    )
    assert params == {
        "slurm_partition": "gpu",
        "timeout_min": 600,
        "gpus_per_node": 1,
        "slurm_array_parallelism": 16,
        "slurm_setup": ["module load cuda", "echo hi"],
    }


@pytest.mark.parametrize(
    "item, message",
    [
        ("partiton=gpu", r"--slurm partiton=\.\.\.: not a submitit Slurm parameter; expected one of .*partition"),
        ("partition", r"--slurm 'partition': expected KEY=VALUE"),
    ],
)
def test_bad_slurm_parameters_are_refused_naming_them(item, message):
    with pytest.raises(SlurmError, match=message):
        parse_parameters([item])


@pytest.mark.parametrize(
    "items, gpu",
    [
        ([], False),
        (["cpus_per_task=4"], False),
        (["gpus_per_node=1"], True),
        (["gpus_per_node=0"], False),
        (["gpus_per_task=1"], True),
        (["gres=gpu:a100:1"], True),
    ],
)
def test_tasks_get_a_gpu_only_when_the_parameters_ask_for_one(items, gpu):
    assert asks_for_gpu(parse_parameters(items)) is gpu
