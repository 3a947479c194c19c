"""Train a small MLP on scikit-learn's digits with Keras 3 ``fit``, with lossreg's loss and Keras's own.

Both runs start from the same seed; each epoch is one full-batch step, so ``history["loss"]`` is
the loss curve step by step. The script checks that the two curves agree and exits non-zero
otherwise: ``lossreg.keras.CrossEntropyLoss()`` against
``keras.losses.SparseCategoricalCrossentropy(from_logits=True)``.

    python examples/keras_digits.py                    # 200 steps on JAX; writes examples/img/keras_digits.png
    python examples/keras_digits.py --backend torch    # the torch Keras backend (or KERAS_BACKEND=torch)
    python examples/keras_digits.py --small            # 15 steps on part of the data (CI)
"""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # Keras reads its backend once, when first imported
    if "--backend" in sys.argv:  # else $KERAS_BACKEND, else JAX
        at = sys.argv.index("--backend")
        os.environ["KERAS_BACKEND"] = sys.argv[at + 1]
        del sys.argv[at:at + 2]
    os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
from common import arguments, check_and_plot, digits  # noqa: E402

import lossreg.keras  # noqa: E402


def train(loss: keras.losses.Loss, data, steps: int) -> tuple[list[float], float]:
    x_train, y_train, x_test, y_test = data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
    history = model.fit(x_train, y_train, batch_size=len(x_train), epochs=steps, shuffle=False, verbose=0)
    accuracy = float((model.predict(x_test, verbose=0).argmax(1) == y_test).mean())
    return history.history["loss"], accuracy


def main() -> int:
    args = arguments(__doc__.splitlines()[0], steps=200, small_steps=15)
    data = digits(small=args.small)
    ours, acc_ours = train(lossreg.keras.CrossEntropyLoss(), data, args.steps)
    theirs, acc_theirs = train(keras.losses.SparseCategoricalCrossentropy(from_logits=True), data, args.steps)
    backend = keras.backend.backend()
    print(f"Keras backend {backend}; test accuracy: lossreg {acc_ours:.3f}, Keras {acc_theirs:.3f}")
    return check_and_plot({"lossreg.keras.CrossEntropyLoss": ours, "keras SparseCategoricalCrossentropy": theirs},
                          f"digits, Keras 3 fit ({backend}, Adam): cross-entropy", args.out / "keras_digits.png")


if __name__ == "__main__":
    sys.exit(main())
