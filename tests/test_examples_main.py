"""The main job (examples/train.py) and the examples, on tiny slices of the embedded data.

Runs are in-process (``main(argv)``) so each costs a fraction of a second; a few checks that
are about the process itself (Ctrl-C, the one-line error) start a real subprocess.
"""
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gradforge

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# The examples import one another by name, as Python allows when they run as scripts.
sys.path.insert(0, str(EXAMPLES))

import _common  # noqa: E402 (from the examples folder put on the path above)
import train  # noqa: E402

TINY = ["--limit", "192", "--batch-size", "32", "--device", "cpu"]


def run_train(tmp_path: Path, *argv: str, name: str = "run") -> Path:
    out = tmp_path / name
    assert train.main([*TINY, "--out", str(out), *argv]) == 0
    return out


def load_state(path: Path) -> dict:
    return gradforge.load(str(path), map_location="cpu")


def assert_same_tensors(a, b, where: str = "") -> None:
    """Nested dicts/lists of tensors and plain values, equal bit for bit."""
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same_tensors(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    elif isinstance(a, gradforge.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=where)
    else:
        assert a == b, where


def without_timing(history_json: str) -> list:
    """The per-epoch metrics that must reproduce exactly (not the clock readings)."""
    return [{k: v for k, v in e.items() if k not in ("images_per_s", "train_seconds")}
            for e in json.loads(history_json)]


def assert_same_run(a: Path, b: Path) -> None:
    """Two runs ended in the same state: weights, optimizer, scheduler, RNGs and metrics."""
    sa, sb = load_state(a / "last.safetensors"), load_state(b / "last.safetensors")
    for key in ("model", "optimizer", "scheduler", "rng", "rng_device", "data_rng", "epoch",
                "batch", "best"):
        assert_same_tensors(sa[key], sb[key], key)
    assert without_timing(sa["history"]) == without_timing(sb["history"])


# -- the main job -------------------------------------------------------------------------------
def test_train_saves_best_checkpoint_metrics_and_plots(tmp_path):
    out = run_train(tmp_path, "--model", "mlp", "--epochs", "2")
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
    assert metrics["settings"]["model"] == "mlp" and metrics["device"] == "cpu"
    assert metrics["data"]["train"] == 192 and metrics["data"]["test"] == 192
    accs = [e["test_acc"] for e in metrics["epochs"]]
    assert metrics["best"]["test_acc"] == max(accs) > 0.3   # 10 classes: chance is 0.1
    assert np.array(metrics["best"]["confusion"]).sum() == 192
    # best.safetensors holds the best epoch's weights: evaluating them reproduces its score.
    model, settings = train.load_model(str(out / "best.safetensors"))
    data = _common.load_data(None, 192)
    _, acc, _ = _common.evaluate(model, data.test_x, data.test_y)
    assert acc == metrics["best"]["test_acc"] and settings["epochs"] == 2
    if _common.pyplot() is not None:
        for png in ("curves.png", "confusion.png", "filters.png"):
            assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png


@pytest.mark.parametrize("model", ["lenet", "resnet"])
def test_train_other_models(tmp_path, model):
    out = run_train(tmp_path, "--model", model, "--epochs", "1", "--limit", "64")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["settings"]["model"] == model and len(metrics["epochs"]) == 1
    assert np.isfinite(metrics["epochs"][0]["train_loss"])


FULL_DATA = Path("/work/shared/data/fashion-mnist")


@pytest.mark.skipif(not FULL_DATA.is_dir(), reason=f"no full Fashion-MNIST in {FULL_DATA}")
def test_train_on_full_idx_files(tmp_path):
    out = run_train(tmp_path, "--model", "mlp", "--epochs", "1", "--data-dir", str(FULL_DATA))
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data"]["source"] == str(FULL_DATA)
    assert metrics["data"]["classes"][0] == "T-shirt/top"


def test_resume_after_one_epoch_equals_two_epochs(tmp_path):
    whole = run_train(tmp_path, "--model", "cnn", "--epochs", "2", "--scheduler", "none",
                      name="whole")
    half = run_train(tmp_path, "--model", "cnn", "--epochs", "1", "--scheduler", "none",
                     name="half")
    assert train.main(["--resume", str(half / "last.safetensors"), "--epochs", "2",
                       "--device", "cpu"]) == 0
    assert_same_run(whole, half)


def test_ctrl_c_mid_epoch_then_resume_is_exact(tmp_path, monkeypatch):
    argv = ("--model", "cnn", "--epochs", "2", "--augment")  # onecycle schedule, adamw
    whole = run_train(tmp_path, *argv, name="whole")

    update = _common.Progress.update
    steps = []

    def interrupt_at_step_9(self, images, loss):
        update(self, images, loss)
        steps.append(1)
        if len(steps) == 9:   # epoch 2, batch 3 (6 batches an epoch)
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(_common.Progress, "update", interrupt_at_step_9)
    stopped = tmp_path / "stopped"
    assert train.main([*TINY, "--out", str(stopped), *argv]) == 130
    state = load_state(stopped / "last.safetensors")
    assert (state["epoch"], state["batch"]) == (1, 3)
    monkeypatch.setattr(_common.Progress, "update", update)
    assert train.main(["--resume", str(stopped / "last.safetensors"), "--device", "cpu"]) == 0
    assert_same_run(whole, stopped)


@pytest.mark.cuda
def test_train_on_cuda_resumes_exactly(tmp_path):
    argv = ["--model", "cnn", "--scheduler", "none", "--augment", "--limit", "64",
            "--batch-size", "32", "--device", "cuda"]
    whole, half = tmp_path / "whole", tmp_path / "half"
    assert train.main([*argv, "--epochs", "2", "--out", str(whole)]) == 0
    assert train.main([*argv, "--epochs", "1", "--out", str(half)]) == 0
    assert train.main(["--resume", str(half / "last.safetensors"), "--epochs", "2",
                       "--device", "cuda"]) == 0
    assert_same_run(whole, half)
    assert json.loads((whole / "metrics.json").read_text())["device"].startswith("cuda")


def test_sigint_to_the_process_saves_a_checkpoint(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "train.py"), "--model", "mlp", "--epochs", "1000",
         "--limit", "2000", "--device", "cpu", "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        for line in proc.stdout:
            if line.startswith("epoch 1/1000 "):   # training is under way
                break
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert f"--resume {out / 'last.safetensors'}" in rest
    state = load_state(out / "last.safetensors")
    assert 0 <= state["epoch"] < 1000 and json.loads(state["settings"])["epochs"] == 1000


@pytest.mark.parametrize("argv, message", [
    (["--data-dir", "{tmp}/missing"], "no such directory"),
    (["--data-dir", "{tmp}/garbage"], "train-images-idx3-ubyte"),
    (["--resume", "{tmp}/missing.safetensors"], "no such file"),
    (["--resume", "{tmp}/garbage/train-images-idx3-ubyte"], "garbage"),
])
def test_bad_arguments_give_one_line_and_status_2(tmp_path, capsys, argv, message):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    for split in ("train", "t10k"):
        for kind in ("images-idx3", "labels-idx1"):
            (garbage / f"{split}-{kind}-ubyte").write_bytes(b"not an IDX file at all")
    assert train.main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train.py: error: ") and message in err


def test_resume_refuses_changed_settings(tmp_path, capsys):
    out = run_train(tmp_path, "--model", "mlp", "--epochs", "1")
    assert train.main(["--resume", str(out / "last.safetensors"), "--lr", "0.1"]) == 2
    assert "remove --lr" in capsys.readouterr().err
    assert train.main(["--resume", str(out / "last.safetensors"), "--epochs", "3"]) == 2
    assert "planned for 1 epochs" in capsys.readouterr().err


def run_script(*argv: str, **env: str) -> subprocess.CompletedProcess:
    # The checkout's gradforge, as in the test process itself (pytest runs from the root).
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, str(EXAMPLES / "train.py"), *argv],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_unknown_model_from_the_command_line():
    result = run_script("--model", "vgg")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "invalid choice: 'vgg'" in result.stderr


def real_gpu() -> bool:
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001  no cupy, no driver: no GPU
        return False


@pytest.mark.skipif(real_gpu(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_one_line_error():
    # Without the simulator the test suite turns on, this machine has no CUDA at all.
    result = run_script("--device", "cuda", GRADFORGE_SIMULATE_CUDA="0")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "CUDA is not available" in result.stderr


# -- helpers shared by the examples -------------------------------------------------------------
def test_augment_is_a_random_crop_and_flip_per_image():
    x = gradforge.randn(6, 2, 5, 7)
    out = _common.augment(x, gradforge.Generator().manual_seed(3), pad=2)
    # The same draws, replayed, drive a plain loop over the images.
    g = gradforge.Generator().manual_seed(3)
    shift_y = gradforge.randint(-2, 3, (6, 1, 1), generator=g).numpy().ravel()
    shift_x = gradforge.randint(-2, 3, (6, 1, 1), generator=g).numpy().ravel()
    flip = (gradforge.rand(6, 1, 1, generator=g) < 0.5).numpy().ravel()
    expected = np.zeros((6, 2, 5, 7), np.float32)
    for i in range(6):
        padded = np.pad(x[i].numpy(), ((0, 0), (2, 2), (2, 2)))
        crop = padded[:, 2 + shift_y[i]:7 + shift_y[i], 2 + shift_x[i]:9 + shift_x[i]]
        expected[i] = crop[:, :, ::-1] if flip[i] else crop
    np.testing.assert_array_equal(out.numpy(), expected)
    assert flip.any() and not flip.all() and (shift_y != 0).any()


def test_progress_prints_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = _common.Progress(8, "epoch 1/3", stream=stream)
    for step in range(8):
        progress.update(16, lambda step=step: 2.0 / (step + 1))
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [line.split(" img/s")[0].rsplit(" ", 1)[0] for line in lines] == [
        "epoch 1/3 [2/8] loss 1.0000", "epoch 1/3 [4/8] loss 0.5000",
        "epoch 1/3 [6/8] loss 0.3333"]


# -- the other examples -------------------------------------------------------------------------
def test_custom_function_example():
    import custom_function
    result = custom_function.main()
    assert result["gradcheck"] and result["gradgradcheck"]
    assert result["wrong_gradcheck"] is False
    assert result["second_derivative_error"] < 1e-12


def test_lenet_example_learns():
    import lenet_fashion_mnist
    accuracy = lenet_fashion_mnist.main(["--epochs", "1", "--limit", "512", "--batch-size",
                                         "32", "--device", "cpu"])
    assert accuracy > 0.3   # 16 steps from chance (0.1)


def test_resnet_example_trains_both_networks(tmp_path):
    import resnet_fashion_mnist as example
    logs = example.main(["--blocks", "1", "--width", "4", "--epochs", "1", "--limit", "128",
                         "--batch-size", "32", "--device", "cpu", "--out", str(tmp_path)])
    assert list(logs) == ["ResNet-8", "plain-8"]
    for log in logs.values():
        assert len(log["loss"]) == len(log["grad_norm"]) == 4 and len(log["test_acc"]) == 1
        assert np.isfinite(log["loss"]).all() and min(log["grad_norm"]) > 0
    if _common.pyplot() is not None:
        assert (tmp_path / "resnet_vs_plain.png").is_file()


def test_resnet_without_skips_differs_only_by_the_shortcuts():
    from resnet_fashion_mnist import ResNet
    resnet, plain = ResNet(blocks=1, width=4), ResNet(blocks=1, width=4, skip=False)
    extra = set(resnet.state_dict()) - set(plain.state_dict())
    assert extra and all(".shortcut." in k for k in extra)
    x = gradforge.randn(2, 1, 28, 28)
    assert resnet(x).shape == plain(x).shape == (2, 10)


def test_max_response_raises_the_filter_activation():
    from visualize_filters import max_response
    model = train.cnn(width=4).eval()
    conv = model[0]

    def response(x):
        with gradforge.no_grad():
            out = conv(x)[gradforge.arange(3), gradforge.tensor([0, 1, 2])]
        return out.relu().mean(dim=(1, 2))

    x = max_response(model, conv, [0, 1, 2], steps=20)
    assert x.shape == (3, 1, 28, 28) and x.min() >= -1 and x.max() <= 3
    # From faint noise (the start) to a response several times stronger.
    assert (response(x) > 4 * response(0.1 * gradforge.randn(3, 1, 28, 28))).all()


def test_visualize_filters_and_adversarial_examples(tmp_path):
    import adversarial
    import visualize_filters
    common = ["--limit", "256", "--epochs", "1", "--device", "cpu"]
    path = visualize_filters.main([*common, "--steps", "3", "--filters", "4",
                                   "--out", str(tmp_path / "filters")])
    checkpoint = tmp_path / "filters" / "network" / "best.safetensors"
    assert checkpoint.is_file()
    assert path is None or path.is_file()
    result = adversarial.main(["--checkpoint", str(checkpoint), "--limit", "256", "--device",
                               "cpu", "--examples", "3", "--out", str(tmp_path / "attack")])
    accuracy = result["accuracy"]
    assert accuracy[max(accuracy)] < accuracy[0.0]   # the attack hurts
    for e in result["examples"]:
        assert e["before"][0] == e["label"] != e["after"][0]


def test_readme_quickstart_runs(capsys):
    readme = (ROOT / "README.md").read_text()
    code = readme.split("## Quickstart", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md quickstart", "exec"), namespace)  # noqa: S102
    assert capsys.readouterr().out == "tensor([2., 4., 6.])\n"
    assert namespace["loss"].item() < 0.05   # 100 steps memorise 64 random points
