"""Found by a user-style hunt over serialization and concurrency: pickling and copying class forms
(a user's subclass too), class forms across a reload, settings blocks that end out of order or
are open in other threads while compiled code runs, and a fork while plugins load."""

from __future__ import annotations

import asyncio
import copy
import os
import pickle
import sys
import threading
import time
import types

import numpy as np
import pytest

import lossreg
from lossreg import toolkit
from lossreg.errors import LossValueError, UnknownLossError

LOGITS, TARGET = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]), np.array([0, 2])


class ScaledCrossEntropy(lossreg.CrossEntropyLoss):
    """A user's subclass of a class form, with an attribute of its own."""

    def __init__(self, scale: float, **options):
        super().__init__(**options)
        self.scale = scale

    def __call__(self, *arrays):
        return self.scale * super().__call__(*arrays)


@pytest.mark.parametrize("duplicate", [lambda x: pickle.loads(pickle.dumps(x)), copy.deepcopy, copy.copy],
                         ids=["pickle", "deepcopy", "copy"])
def test_a_subclass_of_a_class_form_keeps_its_type_and_attributes_when_copied(duplicate):
    loss = ScaledCrossEntropy(10.0, label_smoothing=0.1)
    twin = duplicate(loss)
    assert type(twin) is ScaledCrossEntropy and twin.scale == 10.0
    assert twin.options["label_smoothing"] == 0.1
    assert float(twin(LOGITS, TARGET)) == float(loss(LOGITS, TARGET))


def test_class_forms_are_pickled_by_name_and_stay_the_same_class_across_a_reload():
    loss = lossreg.CrossEntropyLoss(label_smoothing=0.1)
    lossreg.reload()
    assert isinstance(loss, lossreg.CrossEntropyLoss) and type(loss) is lossreg.CrossEntropyLoss
    assert pickle.loads(pickle.dumps(type(loss))) is lossreg.CrossEntropyLoss
    assert pickle.loads(pickle.dumps(loss)) == loss


class SlottedCrossEntropy(lossreg.CrossEntropyLoss):
    """A user's subclass that keeps its own attribute in a slot."""

    __slots__ = ("scale",)

    def __init__(self, scale: float, **options):
        super().__init__(**options)
        self.scale = scale


@pytest.mark.parametrize("duplicate", [lambda x: pickle.loads(pickle.dumps(x, protocol=2)),
                                       lambda x: pickle.loads(pickle.dumps(x)), copy.deepcopy, copy.copy],
                         ids=["pickle-2", "pickle", "deepcopy", "copy"])
def test_a_subclass_with_slots_keeps_them_when_copied(duplicate):
    twin = duplicate(SlottedCrossEntropy(5.0, reduction="sum"))
    assert type(twin) is SlottedCrossEntropy and twin.scale == 5.0 and twin.options["reduction"] == "sum"


def test_class_forms_made_by_racing_threads_are_the_ones_a_reload_keeps():
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads as much as the interpreter allows
    try:
        for name in lossreg.names():
            lossreg.reload()  # a fresh registry: every class form is made anew by the first thread asking
            reg, start = lossreg.registry(), threading.Barrier(6)
            threads = [threading.Thread(target=lambda: (start.wait(), reg.loss_class(name))) for _ in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            made = reg.loss_class(name)()
            lossreg.reload()
            assert isinstance(made, reg.loss_class(name)) and isinstance(made, lossreg.registry().loss_class(name)), name
    finally:
        sys.setswitchinterval(interval)


def test_the_repr_of_a_copy_lists_only_the_options_that_differ_from_the_defaults():
    loss = lossreg.CrossEntropyLoss(label_smoothing=0.1)
    for twin in (pickle.loads(pickle.dumps(loss)), copy.deepcopy(loss), lossreg.from_config(loss.get_config())):
        assert repr(twin) == repr(loss) == "CrossEntropyLoss(label_smoothing=0.1)"
    assert repr(lossreg.MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"


def _invalid_target_raises() -> bool:
    try:
        lossreg.cross_entropy(np.zeros((1, 3)), np.array([7]))
    except LossValueError:
        return True
    return False


def test_a_block_that_ends_inside_another_leaves_that_one_in_force():
    """A generator suspended inside its own block and closed inside the caller's: the caller's
    block keeps its setting (the generator's entry is the one removed)."""
    def batches():
        with lossreg.value_checks("poison"), lossreg.use_kernels(False):
            yield 1
            yield 2

    suspended = batches()
    next(suspended)
    with lossreg.value_checks("sync"), lossreg.use_kernels(True):
        suspended.close()
        assert toolkit.check_mode() == "sync" and lossreg.kernels_enabled()
        assert _invalid_target_raises()
    assert toolkit.check_mode() == "auto"


def test_asyncio_tasks_leaving_their_blocks_out_of_order_restore_each_others_settings():
    """Tasks of one thread share its settings (documented), but a task that left its block
    no longer imposes it on another task's block."""
    seen = {}

    async def first(entered, left):
        with lossreg.value_checks("poison"):
            entered.set()
            await asyncio.sleep(0.01)
        left.set()

    async def second(entered, left):
        await entered.wait()
        with lossreg.value_checks("sync"):
            await left.wait()
            seen["mode"], seen["raises"] = toolkit.check_mode(), _invalid_target_raises()

    async def main():
        entered, left = asyncio.Event(), asyncio.Event()
        await asyncio.gather(first(entered, left), second(entered, left))

    asyncio.run(main())
    assert seen == {"mode": "sync", "raises": True}
    assert toolkit.check_mode() == "auto"


def test_blocks_open_in_other_threads_do_not_recompile_compiled_code():
    """Compiled code reads this thread's settings only: other threads opening use_kernels and
    value_checks blocks (any number of them) leave its guards alone."""
    torch = pytest.importorskip("torch")
    graphs = []

    def counting(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    @torch.compile(backend=counting)
    def step(a, b):
        return lossreg.cross_entropy(a, b) * 2

    a, b = torch.randn(8, 5), torch.randint(0, 5, (8,))
    want = 2 * torch.nn.functional.cross_entropy(a, b)
    for holders in range(5):
        ready, done = threading.Barrier(holders + 1), threading.Event()

        def hold():
            with lossreg.use_kernels(True), lossreg.value_checks("sync"):
                ready.wait()
                done.wait()

        threads = [threading.Thread(target=hold) for _ in range(holders)]
        for t in threads:
            t.start()
        ready.wait()
        try:
            torch.testing.assert_close(step(a, b), want)
        finally:
            done.set()
            for t in threads:
                t.join()
    assert len(graphs) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_fork_while_another_thread_loads_plugins_leaves_the_child_working():
    """A DataLoader worker forked while a thread loads plugins (a first call, a reload): the
    lock that thread holds is not held in the child, which loads the plugins itself."""
    class SlowPlugin:
        @lossreg.hookimpl
        def lossreg_losses(self):
            time.sleep(2)
            return []

    loading = threading.Thread(target=lossreg.register_plugin, args=(SlowPlugin(), "hunt_slow_plugin"))
    loading.start()
    time.sleep(0.5)  # the thread is inside the registry's load, holding its lock
    try:
        _in_forked_child(lambda: float(lossreg.mse_loss(np.ones(3), np.zeros(3))) == 1.0)
    finally:
        loading.join()
        lossreg.unregister_plugin("hunt_slow_plugin")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_a_fork_while_another_thread_makes_a_module_class_leaves_the_child_working():
    """The lock that makes one torch module class per loss (lossreg.keras's Keras classes take the
    same kind) is not held in a child forked while another thread holds it: the child makes its
    classes."""
    forms = pytest.importorskip("lossreg.torch")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with forms._lock:
            held.set()
            release.wait()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    try:
        def made_anew() -> bool:
            forms._classes.clear()  # so that the child must take the lock to make the class
            return forms.module_class("huber_loss").__name__ == "HuberLoss"
        _in_forked_child(made_anew)
    finally:
        release.set()
        holder.join()


def _in_forked_child(check) -> None:
    """Runs ``check`` in a forked child (leaving at once after it: no pytest teardown there) and
    fails unless it returns True within a minute."""
    pid = os.fork()
    if pid == 0:
        os._exit(0 if check() else 1)
    deadline = time.time() + 60
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        pytest.fail("the forked child never finished (a lock held for ever)")
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_loss_of_an_in_process_plugin_read_back_where_it_is_not_registered_says_why():
    """As in a spawned worker: the error names the loss and the plugin, and what to do."""
    @lossreg.define_loss(class_name="HuntTwiceMSELoss")
    def hunt_twice_mse_loss(input, target, /, *, reduction: str = "mean"):
        return 2 * lossreg.mse_loss(input, target, reduction=reduction)

    plugin = types.SimpleNamespace(lossreg_losses=lossreg.hookimpl(lambda: [hunt_twice_mse_loss]))
    lossreg.register_plugin(plugin, "hunt_in_process")
    try:
        pickled = pickle.dumps(lossreg.get("hunt_twice_mse_loss"))
    finally:
        lossreg.unregister_plugin("hunt_in_process")
    with pytest.raises(UnknownLossError, match="hunt_twice_mse_loss.*hunt_in_process.*register it in each new process"):
        pickle.loads(pickled)
    torch = sys.modules.get("torch")
    if torch is not None:
        import lossreg.torch as lt

        with pytest.raises(AttributeError, match="no loss registered in this process"):
            lt.HuntTwiceMSELoss  # noqa: B018
