"""JAX settings of harness.execution.jax_setup: the unrolled threefry lowering on the CPU gives JAX's own bits."""

from __future__ import annotations

import subprocess
import sys

import jax
import numpy as np

from harness.execution.jax_setup import configure_jax

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
