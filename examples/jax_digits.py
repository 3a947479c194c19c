"""Train a small MLP on scikit-learn's digits with JAX and optax under jit, with lossreg's loss and optax's.

Both runs start from the same PRNG key and see the same mini-batches; the whole training step
(loss, gradient, Adam update) is one ``jax.jit``. The script checks that the two loss curves agree
step by step and exits non-zero otherwise: ``lossreg.cross_entropy(logits, labels)`` against
``optax.losses.softmax_cross_entropy_with_integer_labels(logits, labels).mean()``.

    python examples/jax_digits.py            # 300 steps; writes examples/img/jax_digits.png
    python examples/jax_digits.py --small    # 15 steps on part of the data (CI)
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
from common import arguments, check_and_plot, digits

import lossreg

BATCH = 128


def init(key: jax.Array) -> dict[str, jax.Array]:
    k1, k2 = jax.random.split(key)
    return {"w1": jax.random.normal(k1, (64, 64)) / 8.0, "b1": jnp.zeros(64),
            "w2": jax.random.normal(k2, (64, 10)) / 8.0, "b2": jnp.zeros(10)}


def logits(params: dict[str, jax.Array], x: jax.Array) -> jax.Array:
    return jax.nn.relu(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def lossreg_loss(params, x, y):
    return lossreg.cross_entropy(logits(params, x), y)


def optax_loss(params, x, y):
    return optax.losses.softmax_cross_entropy_with_integer_labels(logits(params, x), y).mean()


def train(loss_fn, data, steps: int) -> tuple[list[float], float]:
    x_train, y_train, x_test, y_test = data
    params = init(jax.random.PRNGKey(0))
    optimizer = optax.adam(1e-2)
    opt_state = optimizer.init(params)

    @jax.jit
    def step(params, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    order = np.random.default_rng(0)
    batches: list[np.ndarray] = []
    curve = []
    for _ in range(steps):
        if not batches:
            batches = list(np.array_split(order.permutation(len(x_train)), max(1, len(x_train) // BATCH)))
        index = batches.pop()
        params, opt_state, loss = step(params, opt_state, x_train[index], y_train[index].astype(np.int32))
        curve.append(float(loss))
    accuracy = float(jnp.mean(jnp.argmax(logits(params, x_test), 1) == y_test))
    return curve, accuracy


def main() -> int:
    args = arguments(__doc__.splitlines()[0], steps=300, small_steps=15)
    data = digits(small=args.small)
    ours, acc_ours = train(lossreg_loss, data, args.steps)
    theirs, acc_theirs = train(optax_loss, data, args.steps)
    print(f"test accuracy: lossreg {acc_ours:.3f}, optax {acc_theirs:.3f}")
    return check_and_plot({"lossreg.cross_entropy": ours, "optax softmax_cross_entropy_with_integer_labels": theirs},
                          "digits, JAX + optax (Adam) under jit: cross-entropy", args.out / "jax_digits.png")


if __name__ == "__main__":
    sys.exit(main())
