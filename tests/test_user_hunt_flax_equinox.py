"""A Flax (``flax.nnx`` and ``flax.linen``) and Equinox user's training loops with lossreg's losses
in place of optax's, compared with optax on the same model, data and optimizer.

What this file pins (float32, JAX's default, and float64 under ``jax.enable_x64``):

- 20 steps of ``nnx.jit`` + ``nnx.value_and_grad`` (``nnx.Optimizer``, Adam), of a linen
  ``TrainState`` under ``jax.jit`` (SGD with momentum) and of ``eqx.filter_jit`` +
  ``eqx.filter_value_and_grad`` (AdamW): the parameters after every step equal those trained with
  optax's loss: ``cross_entropy`` with integer labels (int8, uint8, int32), with label smoothing
  (``optax.smooth_labels``) and with probability targets, ``binary_cross_entropy_with_logits``,
  ``mse_loss``, ``huber_loss``, ``kl_div(reduction="batchmean")``; ``ctc_loss`` of a small
  convolutional sequence model against ``optax.ctc_loss`` (torch's "mean": each loss over its
  target length).
- Gradient accumulation with ``jax.lax.scan`` over micro-batches, with ``jax.checkpoint`` and
  ``nnx.remat``; per-example gradients with ``nnx.vmap`` and ``eqx.filter_vmap``; bfloat16
  parameters with a float32 loss; a loss summed over a dict of heads; masks as ``ignore_index``
  and as ``weight=``; arrays with a one-device ``NamedSharding``.
- One compilation per training step: after the first step no step compiles again, with a loss
  object passed to ``eqx.filter_jit`` (a static argument) too; a label-smoothing schedule called
  eagerly stops compiling after a few values, as optax's eager functions never compile per value.
- Bad input inside ``nnx.jit`` / ``eqx.filter_jit`` raises lossreg's error while tracing, naming
  the loss, the argument, what was expected and what was given; a number option given a traced
  value (a schedule's value passed into the step) says that it is traced and what to pass.

Needs ``flax`` and ``equinox`` (``pip install flax equinox``); skipped without them.
"""

from __future__ import annotations

import numpy as np
import pytest

import lossreg

jax = pytest.importorskip("jax")
jnp = jax.numpy
optax = pytest.importorskip("optax")
nnx = pytest.importorskip("flax.nnx")
linen = pytest.importorskip("flax.linen")
train_state = pytest.importorskip("flax.training.train_state")
eqx = pytest.importorskip("equinox")

N, D, C, STEPS = 16, 6, 5, 20


def _tol(dtype) -> dict:
    return {"rtol": 1e-5, "atol": 2e-6} if dtype == jnp.float32 else {"rtol": 1e-12, "atol": 1e-13}


def _close(got, want, dtype, what: str = "") -> None:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), err_msg=what, **_tol(dtype))


def _data(dtype):
    rng = np.random.default_rng(0)
    return {"x": jnp.asarray(rng.normal(size=(N, D)), dtype), "y": jnp.asarray(rng.integers(0, C, N), jnp.int32),
            "p": jax.nn.softmax(jnp.asarray(rng.normal(size=(N, C)), dtype)),
            "b": jnp.asarray(rng.random((N, C)) < 0.5, dtype), "t": jnp.asarray(rng.normal(size=(N, C)), dtype)}


def _optax_integer_labels(d):
    return lambda z: optax.softmax_cross_entropy_with_integer_labels(z, d["y"]).mean()


# Each case: (lossreg's loss of the logits, optax's), given the data.
PAIRS = {
    "cross_entropy, int32 labels": (lambda d: lambda z: lossreg.cross_entropy(z, d["y"]), _optax_integer_labels),
    "cross_entropy, uint8 labels": (lambda d: lambda z: lossreg.cross_entropy(z, d["y"].astype(jnp.uint8)),
                                    _optax_integer_labels),
    "cross_entropy, int8 labels": (lambda d: lambda z: lossreg.cross_entropy(z, d["y"].astype(jnp.int8)),
                                   _optax_integer_labels),
    "cross_entropy, label smoothing": (
        lambda d: lambda z: lossreg.cross_entropy(z, d["y"], label_smoothing=0.1),
        lambda d: lambda z: optax.softmax_cross_entropy(
            z, optax.smooth_labels(jax.nn.one_hot(d["y"], C, dtype=z.dtype), 0.1)).mean()),
    "cross_entropy, probabilities": (lambda d: lambda z: lossreg.cross_entropy(z, d["p"]),
                                     lambda d: lambda z: optax.softmax_cross_entropy(z, d["p"]).mean()),
    "binary_cross_entropy_with_logits": (
        lambda d: lambda z: lossreg.binary_cross_entropy_with_logits(z, d["b"]),
        lambda d: lambda z: optax.sigmoid_binary_cross_entropy(z, d["b"]).mean()),
    "mse_loss": (lambda d: lambda z: lossreg.mse_loss(z, d["t"]),
                 lambda d: lambda z: optax.squared_error(z, d["t"]).mean()),
    "huber_loss": (lambda d: lambda z: lossreg.huber_loss(z, d["t"], delta=0.7),
                   lambda d: lambda z: optax.huber_loss(z, d["t"], delta=0.7).mean()),
    "kl_div": (lambda d: lambda z: lossreg.kl_div(jax.nn.log_softmax(z), d["p"], reduction="batchmean"),
               lambda d: lambda z: optax.kl_divergence(jax.nn.log_softmax(z), d["p"]).mean()),
}
DTYPES = pytest.mark.parametrize("x64", [False, True], ids=["float32", "float64"])


class _Mlp(nnx.Module):
    def __init__(self, dtype, rngs):
        self.hidden = nnx.Linear(D, 16, param_dtype=dtype, dtype=dtype, rngs=rngs)
        self.out = nnx.Linear(16, C, param_dtype=dtype, dtype=dtype, rngs=rngs)

    def __call__(self, x):
        return self.out(nnx.relu(self.hidden(x)))


def _nnx_history(loss, data, dtype):
    model = _Mlp(dtype, nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x):
        value, grads = nnx.value_and_grad(lambda m: loss(m(x)))(model)
        optimizer.update(model, grads)
        return value

    history = []
    for _ in range(STEPS):
        value = step(model, optimizer, data["x"])
        history.append((value, jax.tree.map(jnp.copy, nnx.state(model, nnx.Param))))
    return history


@DTYPES
@pytest.mark.parametrize("case", [case for case in PAIRS if case != "cross_entropy, int8 labels"])  # eqx's below
def test_nnx_training_steps_equal_optax_step_by_step(case: str, x64: bool) -> None:
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        data = _data(dtype)
        ours, theirs = (make(data) for make in PAIRS[case])
        for i, (a, b) in enumerate(zip(_nnx_history(ours, data, dtype), _nnx_history(theirs, data, dtype),
                                       strict=True)):
            assert a[0].dtype == b[0].dtype == dtype
            _close(a, b, dtype, f"{case}, step {i}")


@DTYPES
@pytest.mark.parametrize("case", ["cross_entropy, label smoothing", "binary_cross_entropy_with_logits", "huber_loss"])
def test_linen_train_state_steps_equal_optax(case: str, x64: bool) -> None:
    class Mlp(linen.Module):
        dtype: object

        @linen.compact
        def __call__(self, x):
            return linen.Dense(C, param_dtype=self.dtype)(linen.relu(linen.Dense(16, param_dtype=self.dtype)(x)))

    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        data = _data(dtype)

        def train(loss):
            module = Mlp(dtype)
            state = train_state.TrainState.create(apply_fn=module.apply, tx=optax.sgd(0.1, momentum=0.9),
                                                  params=module.init(jax.random.key(0), data["x"])["params"])

            @jax.jit
            def step(state, x):
                grads = jax.grad(lambda p: loss(state.apply_fn({"params": p}, x)))(state.params)
                return state.apply_gradients(grads=grads)

            states = []
            for _ in range(STEPS):
                state = step(state, data["x"])
                states.append(state.params)
            return states, step._cache_size()

        ours, theirs = (train(make(data)) for make in PAIRS[case])
        _close(ours[0], theirs[0], dtype, case)
        assert ours[1] == theirs[1]  # compilations: TrainState's first step (a Python int step count) is one


@DTYPES
@pytest.mark.parametrize("case", ["cross_entropy, int8 labels", "cross_entropy, probabilities", "mse_loss"])
def test_equinox_filter_jit_steps_equal_optax(case: str, x64: bool) -> None:
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        data = _data(dtype)
        optimizer = optax.adamw(1e-2)

        def train(loss):
            model = eqx.nn.MLP(D, C, 16, 2, key=jax.random.key(0), dtype=dtype)
            opt_state = optimizer.init(eqx.filter(model, eqx.is_array))

            @eqx.filter_jit
            def step(model, opt_state, x):
                value, grads = eqx.filter_value_and_grad(lambda m: loss(jax.vmap(m)(x)))(model)
                updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(model, eqx.is_array))
                return eqx.apply_updates(model, updates), opt_state, value

            models = []
            for _ in range(STEPS):
                model, opt_state, _ = step(model, opt_state, data["x"])
                models.append(eqx.filter(model, eqx.is_array))
            return models

        ours, theirs = (make(data) for make in PAIRS[case])
        _close(train(ours), train(theirs), dtype, case)


@DTYPES
def test_ctc_sequence_model_trains_as_with_optax_ctc_loss(x64: bool) -> None:
    # Ten steps. optax takes batch-major logits and paddings; lossreg torch's time-major log-probabilities and
    # lengths (here int8 and uint8). torch's "mean" is optax's per-sequence loss over its target length.
    b, t, f, k, s = 4, 10, 6, 5, 4
    with jax.enable_x64(x64):
        dtype = jnp.float64 if x64 else jnp.float32
        rng = np.random.default_rng(1)
        x = jnp.asarray(rng.normal(size=(b, t, f)), dtype)
        labels = jnp.asarray(rng.integers(1, k, (b, s)), jnp.int32)
        input_lengths, target_lengths = jnp.asarray([10, 8, 9, 6], jnp.int8), jnp.asarray([4, 3, 2, 1], jnp.uint8)
        logit_paddings = (jnp.arange(t)[None] >= input_lengths[:, None]).astype(dtype)
        label_paddings = (jnp.arange(s)[None] >= target_lengths[:, None]).astype(dtype)

        class Model(nnx.Module):
            def __init__(self, rngs):
                self.conv = nnx.Conv(f, 8, kernel_size=(3,), param_dtype=dtype, rngs=rngs)
                self.out = nnx.Linear(8, k, param_dtype=dtype, rngs=rngs)

            def __call__(self, x):
                return self.out(nnx.gelu(self.conv(x)))

        def ours(logits):
            log_probs = jnp.transpose(jax.nn.log_softmax(logits), (1, 0, 2))
            return lossreg.ctc_loss(log_probs, labels.astype(jnp.uint8), input_lengths, target_lengths)

        def theirs(logits):
            return jnp.mean(optax.ctc_loss(logits, logit_paddings, labels, label_paddings) / target_lengths)

        def train(loss):
            model = Model(nnx.Rngs(0))
            optimizer = nnx.Optimizer(model, optax.adam(3e-2), wrt=nnx.Param)
            step = nnx.jit(lambda m, o: o.update(m, nnx.grad(lambda m: loss(m(x)))(m)))
            params = []
            for _ in range(STEPS // 2):
                step(model, optimizer)
                params.append(jax.tree.map(jnp.copy, nnx.state(model, nnx.Param)))
            return params

        tolerance = {"rtol": 1e-4, "atol": 2e-6} if not x64 else {"rtol": 1e-11, "atol": 1e-12}
        for a, b_ in zip(jax.tree.leaves(train(ours)), jax.tree.leaves(train(theirs)), strict=True):
            np.testing.assert_allclose(a, b_, **tolerance)


def _model_and_batch(dtype=jnp.float32):
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.normal(size=(32, D)), dtype)
    return _Mlp(dtype, nnx.Rngs(0)), x, jnp.asarray(rng.integers(0, C, 32), jnp.int32)


def _summed(loss):
    if loss == "ours":
        return lambda z, y: lossreg.cross_entropy(z, y, reduction="sum")
    return lambda z, y: optax.softmax_cross_entropy_with_integer_labels(z, y).sum()


@pytest.mark.parametrize("remat", [False, True])
def test_gradient_accumulation_with_scan_and_checkpoint(remat: bool) -> None:
    model, x, y = _model_and_batch()
    graph, params = nnx.split(model)

    def accumulate(loss):
        def micro(p, x, y):
            return loss(nnx.merge(graph, p)(x), y)

        micro = jax.checkpoint(micro) if remat else micro

        @jax.jit
        def step(params, x, y):
            def body(carry, batch):
                value, grads = jax.value_and_grad(micro)(params, *batch)
                return (carry[0] + value, jax.tree.map(jnp.add, carry[1], grads)), None

            start = (jnp.zeros(()), jax.tree.map(jnp.zeros_like, params))
            return jax.lax.scan(body, start, (x.reshape(4, 8, D), y.reshape(4, 8)))[0]

        return step(params, x, y)

    _close(accumulate(_summed("ours")), accumulate(_summed("theirs")), jnp.float32)


def test_nnx_remat_and_per_example_gradients_with_nnx_vmap_and_eqx_filter_vmap() -> None:
    model, x, y = _model_and_batch()

    class Remat(nnx.Module):
        def __init__(self, inner):
            self.inner = inner

        def __call__(self, x):
            return nnx.remat(lambda m, x: m(x))(self.inner, x)

    def rematted(loss):
        grads = nnx.jit(lambda m: nnx.grad(lambda m: loss(m(x), y))(m))(Remat(model))
        return nnx.state(grads)

    _close(rematted(_summed("ours")), rematted(_summed("theirs")), jnp.float32, "nnx.remat")

    def per_example(loss):
        one = lambda m, x, y: nnx.value_and_grad(lambda m: loss(m(x), y))(m)  # noqa: E731
        values, grads = nnx.jit(lambda m: nnx.vmap(one, in_axes=(None, 0, 0))(m, x, y))(model)
        return values, nnx.state(grads)

    ours, theirs = (lambda z, y: lossreg.cross_entropy(z, y, label_smoothing=0.2),
                    lambda z, y: optax.softmax_cross_entropy(z, optax.smooth_labels(jax.nn.one_hot(y, C), 0.2)))
    _close(per_example(ours), per_example(theirs), jnp.float32, "nnx.vmap")

    mlp = eqx.nn.MLP(D, C, 16, 2, key=jax.random.key(0))
    labels = y.astype(jnp.uint8)

    def filtered(loss):
        one = eqx.filter_value_and_grad(lambda m, x, y: loss(m(x), y))
        return eqx.filter_jit(eqx.filter_vmap(one, in_axes=(None, 0, 0)))(mlp, x, labels)

    _close(filtered(ours), filtered(theirs), jnp.float32, "eqx.filter_vmap")


def test_bfloat16_parameters_with_a_float32_loss() -> None:
    model, x, y = _model_and_batch(jnp.bfloat16)

    def grads(loss):
        return nnx.jit(lambda m: nnx.value_and_grad(lambda m: loss(m(x).astype(jnp.float32), y))(m))(model)

    ours, theirs = grads(_summed("ours")), grads(_summed("theirs"))
    assert ours[0].dtype == jnp.float32
    assert {a.dtype for a in jax.tree.leaves(nnx.state(ours[1]))} == {jnp.dtype(jnp.bfloat16)}
    # the same float32 loss, so the same bfloat16 gradients, bit for bit
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(theirs), strict=True):
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-6)


def test_losses_summed_over_a_dict_of_heads_and_masks() -> None:
    rng = np.random.default_rng(3)
    heads = {"cls": jnp.asarray(rng.normal(size=(N, C)), jnp.float32),
             "reg": jnp.asarray(rng.normal(size=(N, 3)), jnp.float32),
             "bin": jnp.asarray(rng.normal(size=(N, 2)), jnp.float32)}
    y = jnp.asarray(rng.integers(0, C, N), jnp.int32)
    keep = jnp.asarray(rng.random(N) < 0.7)
    targets = {"cls": jnp.where(keep, y, -100).astype(jnp.int8),  # masked by ignore_index
               "reg": jnp.asarray(rng.normal(size=(N, 3)), jnp.float32),
               "bin": jnp.asarray(rng.random((N, 2)) < 0.5, jnp.float32)}
    reg_weight = jnp.broadcast_to(keep[:, None], (N, 3)).astype(jnp.float32)  # masked by weight=
    ours = {"cls": lambda z, t: lossreg.cross_entropy(z, t),
            "reg": lambda z, t: lossreg.mse_loss(z, t, weight=reg_weight),
            "bin": lossreg.binary_cross_entropy_with_logits}

    def masked_mean(values, mask):
        return jnp.sum(values * mask) / jnp.sum(mask)

    theirs = {"cls": lambda z, t: masked_mean(optax.softmax_cross_entropy_with_integer_labels(z, y), keep),
              "reg": lambda z, t: masked_mean(optax.squared_error(z, t), reg_weight),
              "bin": lambda z, t: optax.sigmoid_binary_cross_entropy(z, t).mean()}

    def total(losses):
        tree = lambda h: sum(jax.tree.leaves(jax.tree.map(lambda f, a, b: f(a, b), losses, h, targets)))  # noqa: E731
        return jax.jit(jax.value_and_grad(tree))(heads)

    _close(total(ours), total(theirs), jnp.float32)


def test_arrays_with_a_one_device_named_sharding() -> None:
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    mesh = Mesh(np.array(jax.devices()[:1]), ("batch",))
    model, x, y = _model_and_batch()
    x, y = (jax.device_put(a, NamedSharding(mesh, PartitionSpec("batch"))) for a in (x, y))
    weight = jnp.linspace(0.5, 2.0, C)  # uncommitted

    def grads(loss):
        return nnx.jit(lambda m: nnx.value_and_grad(lambda m: loss(m(x)))(m))(model)

    ours = grads(lambda z: lossreg.cross_entropy(z, y, weight=weight))
    theirs = grads(lambda z: jnp.sum(weight[y] * optax.softmax_cross_entropy_with_integer_labels(z, y))
                   / jnp.sum(weight[y]))
    _close(ours, theirs, jnp.float32)
    logits = model(x)
    np.testing.assert_allclose(lossreg.cross_entropy(logits, y, weight=weight), ours[0], rtol=1e-6)


_COMPILES: list[str] = []


@pytest.fixture(scope="module")
def compiles() -> list[str]:
    """XLA compilations, one entry each, from the first use in this module on."""
    event = "/jax/core/compile/backend_compile_duration"
    jax.monitoring.register_event_duration_secs_listener(lambda e, _d, **_k: _COMPILES.append(e) if e == event
                                                         else None)
    return _COMPILES


def test_no_training_step_compiles_twice(compiles: list[str]) -> None:
    model, x, y = _model_and_batch()
    optimizer = nnx.Optimizer(model, optax.adam(1e-2), wrt=nnx.Param)
    loss = lossreg.CrossEntropyLoss(weight=[1.0, 2.0, 1.0, 1.0, 0.5], label_smoothing=0.1)

    @nnx.jit
    def step(model, optimizer, x, y):
        value, grads = nnx.value_and_grad(lambda m: loss(m(x), y))(model)
        optimizer.update(model, grads)
        return value

    mlp = eqx.nn.MLP(D, C, 16, 2, key=jax.random.key(0))

    @eqx.filter_jit
    def eqx_step(model, loss, x, y):  # the loss object is a static argument
        return eqx.filter_value_and_grad(lambda m: loss(jax.vmap(m)(x), y))(model)

    step(model, optimizer, x, y)
    eqx_step(mlp, loss, x, y)
    before = len(compiles)
    for _ in range(5):
        step(model, optimizer, x, y)
        eqx_step(mlp, lossreg.CrossEntropyLoss(weight=[1.0, 2.0, 1.0, 1.0, 0.5], label_smoothing=0.1), x, y)
    assert len(compiles) == before


def test_a_label_smoothing_schedule_called_eagerly_stops_compiling(compiles: list[str]) -> None:
    # Eager evaluation with this step's label smoothing: the JAX kernel compiled one program per
    # value (options are static), at every call and kept forever (130 ms a call, where optax's
    # eager functions compile nothing per value); past a few values it now runs op by op.
    model, x, y = _model_and_batch()
    logits = model(x)
    schedule = [0.0031 + 0.0071 * i for i in range(24)]  # values no other test of this module uses

    def ours(value):
        return lossreg.cross_entropy(logits, y, label_smoothing=value)

    def theirs(value):
        return optax.softmax_cross_entropy(logits, optax.smooth_labels(jax.nn.one_hot(y, C), value)).mean()

    counts = {}
    for name, loss in (("lossreg", ours), ("optax", theirs)):
        values = [loss(schedule[0])]
        for value in schedule[1:12]:
            values.append(loss(value))
        before = len(compiles)
        values += [loss(value) for value in schedule[12:]]
        counts[name] = len(compiles) - before
        counts[name + " values"] = values
    assert counts["lossreg"] == counts["optax"] == 0
    np.testing.assert_allclose(counts["lossreg values"], counts["optax values"], rtol=1e-6)


BAD = {
    "labels of another batch size": (lambda z: lossreg.cross_entropy(z, jnp.zeros((N + 1,), jnp.int32)),
                                     r"cross_entropy: argument 'target' expected class indices of shape \(16,\) "
                                     r"or \(16, 1\) for input of shape \(16, 5\), got shape \(17,\)"),
    "one-hot integer labels": (lambda z: lossreg.cross_entropy(z, jax.nn.one_hot(jnp.zeros(N, jnp.int32), C,
                                                                                   dtype=jnp.int32)),
                               r"cross_entropy: argument 'target' expected class indices .* got shape \(16, 5\)"),
    "class weights of another length": (lambda z: lossreg.cross_entropy(z, jnp.zeros(N, jnp.int32),
                                                                        weight=jnp.ones(C + 1)),
                                        r"cross_entropy: argument 'weight' expected .*shape \(5,\), got shape \(6,\)"),
    "regression target of another shape": (lambda z: lossreg.huber_loss(z, jnp.zeros((N, 1))),
                                           r"huber_loss: argument 'target' expected the shape of 'input' \(16, 5\), "
                                           r"got shape \(16, 1\)"),
    "integer regression target": (lambda z: lossreg.mse_loss(z, jnp.zeros((N, C), jnp.int32)),
                                  r"mse_loss: argument 'target' expected a real floating-point array, got jax array "
                                  r"of dtype int32 and shape \(16, 5\)"),
    "batch-major CTC log-probabilities": (
        lambda z: lossreg.ctc_loss(jax.nn.log_softmax(jnp.stack([z] * 7, axis=1)), jnp.ones((N, 2), jnp.int32),
                                   jnp.full((N,), 7), jnp.full((N,), 2)),
        r"ctc_loss: argument 'targets' expected padded labels of shape \(7, S\).*got shape \(16, 2\)"),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("framework", ["nnx.jit", "eqx.filter_jit"])
def test_bad_input_inside_a_compiled_step_is_a_lossreg_error_at_trace_time(case: str, framework: str) -> None:
    loss, message = BAD[case]
    model, x, _ = _model_and_batch()
    x = x[:N]
    if framework == "nnx.jit":
        step = nnx.jit(lambda m: nnx.value_and_grad(lambda m: loss(m(x)))(m))
        arguments = (model,)
    else:
        step = eqx.filter_jit(eqx.filter_value_and_grad(lambda m: loss(jax.vmap(m)(x))))
        arguments = (eqx.nn.MLP(D, C, 16, 2, key=jax.random.key(0)),)
    traced_only = nnx.eval_shape if framework == "nnx.jit" else eqx.filter_eval_shape
    with pytest.raises(lossreg.LossError, match=message):
        traced_only(step, *arguments)  # the error is raised while tracing, before anything runs
    with pytest.raises(lossreg.LossError, match=message):
        step(*arguments)


@pytest.mark.parametrize("option", ["label_smoothing", "delta"])
def test_a_number_option_given_a_traced_value_says_it_is_traced_and_what_to_pass(option: str) -> None:
    # A label-smoothing (or Huber delta) schedule's value passed into the jitted step is a tracer:
    # the error named it by JAX's internal repr, "got JitTracer(~float32[])", without saying that
    # the option is static (a Python number) under jax.jit. (float64 where an earlier test in the
    # same process left jax_enable_x64 on.)
    model, x, y = _model_and_batch()
    if option == "label_smoothing":
        loss = lambda z, value: lossreg.cross_entropy(z, y, label_smoothing=value)  # noqa: E731
    else:
        loss = lambda z, value: lossreg.huber_loss(z, jax.nn.one_hot(y, C), delta=value)  # noqa: E731
    step = nnx.jit(lambda m, value: nnx.value_and_grad(lambda m: loss(m(x), value))(m))
    message = (rf"{'cross_entropy' if option == 'label_smoothing' else 'huber_loss'}: argument '{option}' expected "
               r"a number.*, got jax array of dtype float(32|64) and shape \(\) traced by a JAX transformation "
               r"\(jax\.jit, grad, vmap\): this option is static, pass a Python number")
    with pytest.raises(lossreg.LossValueError, match=message):
        step(model, 0.1)
    with pytest.raises(lossreg.LossValueError, match=message):
        eqx.filter_jit(lambda v: loss(model(x), v))(jnp.asarray(0.1))


def test_a_flag_given_a_traced_value_says_it_is_traced_and_what_to_pass() -> None:
    # A Python bool passed to an nnx.jit step is traced (a bool array) like a number.
    log_probs = jax.nn.log_softmax(jnp.zeros((5, 2, 4)))
    targets, lengths = jnp.asarray([[1, 2], [3, 3]]), (jnp.asarray([5, 5]), jnp.asarray([2, 2]))
    step = nnx.jit(lambda flag: lossreg.ctc_loss(log_probs, targets, *lengths, zero_infinity=flag))
    with pytest.raises(lossreg.LossTypeError, match=r"ctc_loss: argument 'zero_infinity' expected True or False, "
                                                    r"got jax array of dtype bool and shape \(\) traced by a JAX "
                                                    r"transformation .*pass True or False"):
        step(True)
    assert np.isfinite(nnx.jit(lambda: lossreg.ctc_loss(log_probs, targets, *lengths, zero_infinity=True))())


def test_errors_name_an_eager_jax_array_jax_not_jaxlib() -> None:
    # Labels straight from a NumPy data loader beside the model's logits, in eager evaluation:
    # lossreg refuses two array libraries (README), naming them; a concrete JAX array's class lives
    # in jaxlib, and the message said "'input' from jaxlib" (and "jaxlib array of dtype ...").
    model, x, y = _model_and_batch()
    logits = model(x)
    with pytest.raises(lossreg.LossTypeError, match=r"cross_entropy: argument 'input/target' expected arrays of one "
                                                    r"array library, got 'input' from jax, 'target' from numpy"):
        lossreg.cross_entropy(logits, np.asarray(y))
    with pytest.raises(lossreg.LossTypeError, match=r"mse_loss: argument 'target' expected a real floating-point "
                                                    r"array, got jax array of dtype int32 and shape \(32, 5\)"):
        lossreg.mse_loss(logits, jnp.zeros((32, C), jnp.int32))
