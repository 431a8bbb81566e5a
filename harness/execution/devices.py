"""Which device a worker uses, decided before JAX is imported in it.

- With GPUs: worker i gets GPU ``gpus[i mod len(gpus)]`` through ``CUDA_VISIBLE_DEVICES``. The
  GPU list comes from ``--gpus``, else the parent's ``CUDA_VISIBLE_DEVICES``, else
  ``nvidia-smi -L``. Workers that share a GPU do not preallocate: each gets
  ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (memory grows as needed) so that none takes most of the
  card; a worker alone on its GPU keeps JAX's default preallocation, which is faster.
- Without GPUs: JAX runs on the CPU and the cores are split between the workers (CPU affinity
  plus the BLAS/OpenMP thread variables), so N workers on C cores never run more than C busy
  threads between them.

Everything here is plain Python; nothing imports JAX except :func:`describe_device`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import warnings

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parse_gpu_list(text: str | None) -> list[str] | None:
    """``"0,2"`` -> ``["0", "2"]``; ``""`` or ``"-1"`` -> ``[]`` (no GPU); ``None`` -> ``None``."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    if items in ([], ["-1"]):
        return []
    return items


def detect_gpus(env: dict | None = None) -> list[str]:
    env = os.environ if env is None else env
    visible = parse_gpu_list(env.get("CUDA_VISIBLE_DEVICES"))
    if visible is not None:
        return visible
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return re.findall(r"^GPU (\d+):", out, flags=re.M)


def worker_index(worker_id: str) -> int:
    """``"gw3"`` -> 3; the only process (no xdist) -> 0."""
    m = re.fullmatch(r"gw(\d+)", worker_id or "")
    return int(m.group(1)) if m else 0


def cpu_share(index: int, n_workers: int, cores: list[int]) -> list[int]:
    """The cores worker ``index`` of ``n_workers`` may use: a disjoint slice when there are enough,
    else one core, shared round-robin. xdist numbers a worker that replaces a dead one past the
    worker count (``gw2`` of 2): it takes the slice of ``index mod n_workers``."""
    n_workers = max(n_workers, 1)
    index %= n_workers
    per = len(cores) // n_workers
    if per == 0:
        return [cores[index % len(cores)]]
    return cores[index * per : (index + 1) * per]


def worker_env(
    index: int, n_workers: int, gpus: list[str], cores: list[int]
) -> tuple[dict[str, str], list[int] | None]:
    """(environment variables, CPU affinity or None) for worker ``index`` of ``n_workers``."""
    if gpus:
        gpu = gpus[index % len(gpus)]
        sharing = len(range(index % len(gpus), n_workers, len(gpus)))
        env = {"CUDA_VISIBLE_DEVICES": gpu, "HARNESS_DEVICE": f"gpu:{gpu}"}
        if sharing > 1:
            env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        return env, None
    share = cpu_share(index, n_workers, cores)
    env = {"JAX_PLATFORMS": "cpu", "HARNESS_DEVICE": "cpu"}
    env.update({var: str(len(share)) for var in THREAD_VARS})
    return env, share


def pin_this_process(index: int, n_workers: int, gpu_option: str | None) -> dict[str, str]:
    """Apply :func:`worker_env` to this process (call before JAX is imported); returns the env."""
    gpus = parse_gpu_list(gpu_option)
    if gpus is None:
        gpus = detect_gpus()
    cores = sorted(os.sched_getaffinity(0))
    env, affinity = worker_env(index, n_workers, gpus, cores)
    os.environ.update(env)
    if affinity is not None and n_workers > 1:
        try:
            os.sched_setaffinity(0, affinity)
        except OSError as exc:  # e.g. a cpuset that changed under us: the thread limits still hold
            warnings.warn(f"could not pin worker {index} to cores {affinity}: {exc}", stacklevel=2)
    return env


def describe_device() -> str:
    """The device JAX computes on in this process, e.g. ``gpu:2 NVIDIA H100 80GB HBM3`` or ``cpu``."""
    import jax

    dev = jax.devices()[0]
    if dev.platform == "cpu":
        cores = len(os.sched_getaffinity(0))
        return f"cpu ({cores} core{'s' if cores != 1 else ''})"
    physical = os.environ.get("CUDA_VISIBLE_DEVICES", str(dev.id))
    return f"{dev.platform}:{physical} {dev.device_kind}"
