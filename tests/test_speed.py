"""The speed switches (facevae/models/speed.py and BetaVAEModule): each computes what eager fp32 computes, and the
training loop reads nothing from the device between logging steps. All on CPU; no test measures a speed."""

from __future__ import annotations

import logging
import traceback

import pytest
import pytorch_lightning as pl
import torch
from conftest import module_of
from test_beta_vae import FaceCrops, batch_of, structured_images
from torch.utils.data import DataLoader

from facevae.core.errors import FaceVAEError
from facevae.models import BetaVAEModule, speed

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")

TINY = {"latent_dim": 4, "channels": [8, 8], "hidden": 16, "image_size": 16}


def tiny_module(**switches) -> BetaVAEModule:
    torch.manual_seed(0)  # the same initial weights for every switch
    module = module_of(BetaVAEModule, **TINY, lr=1e-3, **switches)
    module.configure_model()
    return module


def trainer_for(tmp_path, **kwargs) -> pl.Trainer:
    settings = {
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "default_root_dir": tmp_path,
        **kwargs,
    }
    return pl.Trainer(**settings)


# --- the switch's values --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, expected",
    [
        ("auto", "auto"),
        (False, None),
        ("false", None),
        (None, None),
        (True, "default"),
        ("max-autotune", "max-autotune"),
    ],
)
def test_compile_settings_are_auto_off_or_a_torch_compile_mode(setting, expected):
    assert speed.compile_setting(setting) == expected


def test_an_unknown_compile_mode_is_a_one_line_error():
    with pytest.raises(FaceVAEError, match="model.compile=fast: use auto, false or a torch.compile mode"):
        module_of(BetaVAEModule, compile="fast")


def test_auto_compiles_inside_the_captured_step_on_a_gpu_and_stays_eager_on_cpu():
    found = lambda device: "/usr/bin/cc"  # noqa: E731
    assert speed.resolve_compile("auto", "cuda", found) == "default"
    assert speed.resolve_graph("auto", "cuda", "default", world_size=1) is True
    assert speed.resolve_compile("auto", "cpu", found) is None
    assert speed.resolve_compile("default", "cpu", found) == "default"
    assert speed.resolve_compile(None, "cuda", found) is None


def test_without_a_compiler_an_explicit_mode_fails_in_one_line_and_auto_falls_back_to_eager(caplog):
    missing = lambda device: None  # noqa: E731
    with pytest.raises(FaceVAEError, match="model.compile=default: torch.compile needs a C/C\\+\\+ compiler") as err:
        speed.resolve_compile("default", "cpu", missing)
    assert "\n" not in str(err.value)
    with caplog.at_level(logging.WARNING):
        assert speed.resolve_compile("auto", "cuda", missing) is None
    assert "training eagerly" in caplog.text


@pytest.mark.parametrize(
    "setting, expected",
    [("auto", "auto"), (True, True), ("true", True), (False, False), ("false", False), (None, False)],
)
def test_cuda_graph_settings_are_auto_on_or_off(setting, expected):
    assert speed.graph_setting(setting) == expected


def test_an_unknown_cuda_graph_setting_is_a_one_line_error():
    with pytest.raises(FaceVAEError, match="model.cuda_graph=sometimes: use auto, true or false"):
        speed.graph_setting("sometimes")


def test_auto_captures_the_step_on_one_gpu_unless_compile_replays_its_own_graphs():
    assert speed.resolve_graph("auto", "cuda", None, world_size=1) is True
    assert speed.resolve_graph("auto", "cuda", "default", world_size=1) is True
    assert speed.resolve_graph("auto", "cuda", "reduce-overhead", world_size=1) is False
    assert speed.resolve_graph("auto", "cuda", None, world_size=2) is False  # DDP's all-reduce is not capturable
    assert speed.resolve_graph("auto", "cpu", None, world_size=1) is False
    assert speed.resolve_graph("auto", "cuda", None, world_size=1, autocast=True) is False  # not measured yet
    assert speed.resolve_graph(False, "cuda", None, world_size=1) is False


@pytest.mark.parametrize(
    "device, mode, world, message",
    [
        ("cpu", None, 1, "CUDA graphs need a GPU, and this fit runs on cpu"),
        ("cuda", None, 2, "cannot hold DDP's gradient all-reduce"),
        ("cuda", "reduce-overhead", 1, "that mode already replays CUDA graphs"),
    ],
)
def test_an_explicit_cuda_graph_where_capture_cannot_work_is_a_one_line_error(device, mode, world, message):
    with pytest.raises(FaceVAEError, match=message):
        speed.resolve_graph(True, device, mode, world_size=world)


def test_this_machine_has_the_compiler_torch_compile_needs_on_cpu():
    assert speed.find_compiler("cpu") is not None  # else the compile tests below would only see the error


# --- each switch computes what eager fp32 computes --------------------------------------------------------------


def loss_and_grads(module: BetaVAEModule, images: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    batch = module.on_after_batch_transfer(batch_of(images), 0)
    torch.manual_seed(1)  # the same reparameterisation noise
    loss = module.training_loss(batch, 0)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in module.named_parameters()}


@pytest.fixture(scope="module")
def eager_step():
    images = structured_images(8, size=16)
    return images, loss_and_grads(tiny_module(), images)


def assert_same_step(got, expected, rtol: float, grad_rtol: float | None = None) -> None:
    (loss, grads), (loss_0, grads_0) = got, expected
    torch.testing.assert_close(loss, loss_0, rtol=rtol, atol=0)
    for name, grad in grads.items():
        # Relative to the gradient's scale: summation order alone moves single elements near zero.
        error = (grad - grads_0[name]).norm() / grads_0[name].norm()
        assert error < (grad_rtol or rtol), (name, float(error))


def test_channels_last_gives_the_eager_loss_and_gradients(eager_step):
    images, expected = eager_step
    module = tiny_module(channels_last=True)
    assert module.model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    batch = module.on_after_batch_transfer(batch_of(images), 0)
    assert batch["x"].is_contiguous(memory_format=torch.channels_last)
    assert_same_step(loss_and_grads(module, images), expected, rtol=1e-5)


def test_bf16_autocast_gives_the_eager_loss_and_a_gradient_pointing_the_same_way(eager_step):
    images, expected = eager_step
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (loss, grads) = loss_and_grads(tiny_module(), images)
    (loss_0, grads_0) = expected
    # bf16 keeps 8 bits of mantissa (0.4% per rounding): the loss agrees to 0.1%. Single gradients do not: the first
    # layer's is a sum of (x - x_mean) / sigma^2 terms that cancel, 7% off on a CPU that emulates bf16 and 216% (its
    # bias twice the eager size) on one with bf16 matrix units (an H100 machine's Xeon). So the whole gradient is
    # checked for its direction; whether bf16 changes what is learned is measured on whole runs (python -m
    # facevae.bench results: within the seed-to-seed noise on an H100), not here.
    torch.testing.assert_close(loss, loss_0, rtol=1e-2, atol=0)
    assert all(torch.isfinite(g).all() for g in grads.values())
    flat, flat_0 = (torch.cat([g.flatten() for g in gs.values()]) for gs in (grads, grads_0))
    assert torch.nn.functional.cosine_similarity(flat, flat_0, dim=0) > 0.9


@pytest.fixture
def dynamo_only(monkeypatch) -> list:
    """torch.compile traced by dynamo as one graph (fullgraph: a graph break is an error) but run as traced, without
    inductor: what the compile switch does to the step, in a second instead of inductor's half-minute build of C++
    kernels. Returns the graphs compiled, one entry each."""
    graphs = []

    def backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    torch._dynamo.reset()  # graphs compiled by earlier tests would be reused, not counted
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None: real(fn, backend=backend, fullgraph=True))
    yield graphs
    torch._dynamo.reset()


def test_the_compiled_step_is_one_graph_with_the_eager_loss_and_gradients(eager_step, dynamo_only):
    images, expected = eager_step
    module = tiny_module(compile="reduce-overhead", kl_warmup_steps=10)  # a KL weight passed as a tensor
    assert module.train_step.start(module.parameters(), "cpu") == "reduce-overhead"
    module.kl_schedule = lambda: (1.0, None)  # warm-up's weight at step 0 is 0; the eager step's is 1
    assert_same_step(loss_and_grads(module, images), expected, rtol=1e-5)


@pytest.mark.slow
def test_the_inductor_compiled_step_gives_the_eager_loss_and_gradients(eager_step):
    images, expected = eager_step
    module = tiny_module(compile="default")
    assert module.train_step.start(module.parameters(), "cpu") == "default"
    # Inductor draws its own random numbers unless told to use torch's: with them, the noise is eager's.
    with torch._inductor.config.patch(fallback_random=True):
        got = loss_and_grads(module, images)
    assert_same_step(got, expected, rtol=1e-4)


def test_eager_is_the_default_on_cpu():
    module = tiny_module()
    assert module.train_step.compile_setting == "auto" and module.train_step.start(module.parameters(), "cpu") is None


def fit_a_few_steps(tmp_path, precision: str = "32-true", **switches) -> tuple[pl.Trainer, BetaVAEModule]:
    module = tiny_module(**switches)
    loader = DataLoader(FaceCrops(structured_images(32, size=16)), batch_size=8)
    trainer = trainer_for(tmp_path, max_epochs=2, precision=precision, log_every_n_steps=2)
    trainer.fit(module, loader)
    assert trainer.global_step == 8
    loss = trainer.callback_metrics["train/loss"]
    assert loss.device.type == "cpu" and torch.isfinite(loss)
    assert module.train_step.compiled is None  # dropped when the fit ends: evaluation runs the eager model
    return trainer, module


@pytest.mark.parametrize(
    "switches, precision",
    [({}, "32-true"), ({"channels_last": True}, "32-true"), ({}, "bf16-mixed")],
    ids=["eager", "channels_last", "bf16-mixed"],
)
def test_each_switch_trains_in_the_lightning_loop(tmp_path, switches, precision):
    fit_a_few_steps(tmp_path, precision, **switches)


def test_the_compiled_step_trains_in_the_lightning_loop_without_recompiling(tmp_path, dynamo_only):
    fit_a_few_steps(tmp_path, compile="default", kl_warmup_steps=4)  # a new KL weight each step
    assert len(dynamo_only) == 1


@pytest.mark.slow
def test_the_inductor_compiled_step_trains_in_the_lightning_loop(tmp_path):
    fit_a_few_steps(tmp_path, compile="default", kl_warmup_steps=4)


def test_capture_under_autocast_keeps_its_dtype_with_the_weight_cache_off():
    """A cast cached before capture would be read, stale, by every replay: warm-up and capture run without the cache."""
    with torch.autocast("cpu", dtype=torch.bfloat16):
        with speed._uncached_autocast("cpu"):
            assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
            assert not torch.is_autocast_cache_enabled()
        assert torch.is_autocast_cache_enabled()
    with speed._uncached_autocast("cpu"):  # without autocast: nothing changes
        assert not torch.is_autocast_enabled("cpu") and torch.is_autocast_cache_enabled()


needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: CUDA graphs exist only there")


@needs_gpu
@pytest.mark.parametrize("eager_first", [False, True])
def test_a_captured_step_computes_what_eager_computes_for_each_new_batch(eager_first):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).cuda()
    if eager_first:
        model(torch.randn(5, 6, device="cuda")).sum().backward()

    def step(x, weight, capacity):
        loss = weight * model(x).pow(2).mean()
        loss.backward()
        return (loss.detach(),)

    captured = speed.CapturedStep(step, list(model.parameters()))
    for i in range(3):  # each replay sees its own batch and weight, and rewrites the gradients in place
        x = torch.randn(5, 6, device="cuda")
        (loss,) = captured(x, 0.5 + i, None)
        got = [p.grad.clone() for p in model.parameters()]
        model.zero_grad(set_to_none=False)
        expected = (0.5 + i) * model(x).pow(2).mean()
        expected.backward()
        # Let go of this eager graph: alive, its gradient nodes stay tied to the default stream, and a capture that
        # reused them would have to wait on that stream, which CUDA forbids (seen on an H100 at the recapture below).
        expected = expected.detach()
        torch.testing.assert_close(loss, expected.detach())
        for g, p in zip(got, model.parameters(), strict=True):
            torch.testing.assert_close(g, p.grad)
    assert captured.captures == 1
    captured(torch.randn(7, 6, device="cuda"), 1.0, None)  # a new batch shape: captured again
    assert captured.captures == 2


@needs_gpu
@pytest.mark.parametrize("switches", [{"cuda_graph": True}, {"cuda_graph": True, "channels_last": True}])
def test_the_captured_step_trains_in_the_lightning_loop(tmp_path, switches):
    module = tiny_module(compile=False, **switches)
    before = [p.detach().clone() for p in module.parameters()]
    loader = DataLoader(FaceCrops(structured_images(32, size=16)), batch_size=8)
    trainer = trainer_for(tmp_path, accelerator="gpu", devices=1, max_epochs=2, log_every_n_steps=2)
    trainer.fit(module, loader)
    assert trainer.global_step == 8 and torch.isfinite(trainer.callback_metrics["train/loss"])
    assert all(not torch.equal(b, p.detach().cpu()) for b, p in zip(before, module.parameters(), strict=True))


# --- nothing on the hot path waits for the device -----------------------------------------------------------------

HOST_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__")


class BatchWindows(pl.Callback):
    """Which training batch each event falls in: from that batch's start to the next one's (Lightning converts the
    progress bar's values and writes to its loggers after the module's hooks)."""

    def __init__(self) -> None:
        self.batch: int | None = None
        self.events: dict[int, list[str]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch = batch_idx
        self.events[batch_idx] = []

    def record(self, what: str) -> None:
        if self.batch is not None:
            self.events[self.batch].append(what)

    def batches_with(self, what: str) -> set[int]:
        return {b for b, events in self.events.items() if what in events}


def test_the_module_reads_the_device_and_logs_only_at_logging_steps(tmp_path, monkeypatch):
    """On a GPU every read of a tensor by the host (.item(), bool(), .tolist(), ...) waits for all queued work. On
    CPU every tensor is a host tensor, so this counts the reads the module makes, and checks it hands Lightning
    values only at logging steps: Lightning converts the logged values after every batch (for the progress bar),
    and those are then host copies made at the last logging step. Progress bar and CSV logger on, as in train.py."""
    windows = BatchWindows()
    for name in HOST_READS:
        real = getattr(torch.Tensor, name)

        def counted(self, *args, _real=real, **kwargs):
            files = [frame.filename for frame in traceback.extract_stack()]
            # Adam reads its step count, a host tensor on CPU; on a GPU (fused) it stays on the device.
            if any("/facevae/" in f for f in files) and not any("/torch/optim/" in f for f in files):
                windows.record("read")
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    real_log = BetaVAEModule.log

    def log(self, name, value, *args, **kwargs):
        windows.record("log")
        assert isinstance(value, torch.Tensor) and value.device.type == "cpu" and not value.requires_grad
        return real_log(self, name, value, *args, **kwargs)

    monkeypatch.setattr(BetaVAEModule, "log", log)
    module = tiny_module(kl_warmup_steps=100)  # a KL weight that changes every step, logged too
    loader = DataLoader(FaceCrops(structured_images(96, size=16)), batch_size=8)
    trainer = trainer_for(
        tmp_path,
        max_epochs=1,
        log_every_n_steps=4,
        callbacks=[windows],
        logger=pl.loggers.CSVLogger(tmp_path),
        enable_progress_bar=True,
    )
    trainer.fit(module, loader)
    assert len(windows.events) == 12
    # Steps 4, 8 and 12 are logged (12 is also the epoch's last batch); nothing else reads or logs.
    assert windows.batches_with("read") == windows.batches_with("log") == {3, 7, 11}
    assert set(trainer.logged_metrics) >= {"train/loss", "train/kl", "train/beta"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: CUDA itself reports the waits there")
@pytest.mark.parametrize("cuda_graph", [False, True], ids=["eager", "captured"])
def test_no_cuda_synchronisation_between_logging_steps(tmp_path, cuda_graph):
    """The check the CPU test above stands in for: CUDA raises on any synchronising call outside logging steps."""

    class NoSyncOutsideLogging(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            checked = batch_idx >= 2 and batch_idx % 4 != 3  # after warm-up; batches 3, 7, 11 log
            torch.cuda.set_sync_debug_mode("error" if checked else "default")

        def on_train_end(self, trainer, pl_module):
            torch.cuda.set_sync_debug_mode("default")

    module = tiny_module(compile=False, cuda_graph=cuda_graph)
    loader = DataLoader(FaceCrops(structured_images(96, size=16)), batch_size=8, pin_memory=True)
    trainer = trainer_for(tmp_path, accelerator="gpu", devices=1, max_epochs=1, log_every_n_steps=4)
    trainer.callbacks.append(NoSyncOutsideLogging())
    try:
        trainer.fit(module, loader)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def test_a_nan_is_reported_at_its_step_when_the_steps_are_read(tmp_path):
    class PoisonAtStep(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == 5:
                with torch.no_grad():
                    pl_module.model.encoder[0].weight.fill_(float("nan"))

    module = tiny_module()
    loader = DataLoader(FaceCrops(structured_images(64, size=16)), batch_size=8)
    trainer = trainer_for(tmp_path, max_epochs=1, log_every_n_steps=50, callbacks=[PoisonAtStep()])
    with pytest.raises(FaceVAEError, match=r"loss is nan at step 5 \(epoch 0\)"):
        trainer.fit(module, loader)  # read at the epoch's last batch, step 7


def test_a_checkpoint_is_refused_while_unread_steps_hold_a_nan():
    module = tiny_module()
    module.train_step.values.add(3, [torch.tensor(1.0)] * 3)
    module.train_step.values.add(4, [torch.tensor(float("nan"))] * 3)
    with pytest.raises(FaceVAEError, match="loss is nan at step 4"):
        module.on_save_checkpoint({})
    assert len(module.train_step.values) == 2  # checked, not consumed: the values are still logged at the next read


def test_step_values_are_read_in_one_copy_and_emptied():
    steps = speed.StepValues(["loss", "kl"])
    steps.add(10, [torch.tensor(1.0), torch.tensor(2.0)])
    steps.add(11, [torch.tensor(3.0), torch.tensor(4.0, dtype=torch.bfloat16)])
    first, values = steps.read()
    assert first == 10 and values.tolist() == [[1.0, 2.0], [3.0, 4.0]] and len(steps) == 0
    assert speed.first_non_finite(10, torch.tensor([1.0, float("inf"), float("nan")])) == (11, float("inf"))
    assert speed.first_non_finite(0, torch.tensor([1.0])) is None
