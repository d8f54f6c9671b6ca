"""train.fit: it learns, it resumes to bit-identical weights, it stops loudly on divergence, and
it logs a CSV history. All on CPU with width-4/8 models and synthetic data."""
from __future__ import annotations

import csv
import math

import pytest
import torch

from squeeze import batches, checkpoint, data, evaluation, models, train
from squeeze.history import HISTORY_COLUMNS, write_history
from squeeze.config import TrainConfig
from squeeze.models import ResNetSpec

TIMING = ("epoch_seconds", "images_per_second")


# ---- helpers -------------------------------------------------------------------------------------

def device_data(train_size: int, test_size: int, seed: int = 0) -> batches.DeviceData:
    ds = data.synthetic(train_size, test_size, seed=seed)
    mean, std = ds.mean_std()
    return batches.DeviceData(ds, mean, std, "cpu")


def fresh_model(width: int = 4, seed: int = 0) -> models.ResNet18:
    torch.manual_seed(seed)
    return models.build(ResNetSpec.resnet18(width))


def config(**overrides) -> TrainConfig:
    values = dict(epochs=4, batch_size=64, lr=0.05, momentum=0.9, weight_decay=5e-4,
                  schedule="cosine", seed=0)
    values.update(overrides)
    return TrainConfig(**values)


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in history]


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, f"tensors differ: {different[:5]}"


def interrupt_in_epoch(dd: batches.DeviceData, epoch: int) -> None:
    """Make the `epoch`-th call of dd.train_batches (1-based) raise KeyboardInterrupt mid-epoch."""
    original, calls = dd.train_batches, []

    def train_batches(batch_size, generator):
        calls.append(1)
        for i, batch in enumerate(original(batch_size, generator)):
            if len(calls) == epoch and i == 1:
                raise KeyboardInterrupt
            yield batch

    dd.train_batches = train_batches


@pytest.fixture(scope="module")
def small_data() -> batches.DeviceData:
    return device_data(256, 100)


# ---- learning --------------------------------------------------------------------------------------

def test_fit_learns_synthetic_data(tmp_path):
    dd = device_data(2000, 500)
    model = fresh_model(width=8)
    cfg = config(epochs=3, batch_size=128, lr=0.05)
    log = tmp_path / "logs" / "train.csv"

    result = train.fit(model, dd, cfg, name="baseline", log_path=log)

    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.last["test_accuracy"] >= 0.9
    assert result.last["test_accuracy"] == pytest.approx(evaluation.accuracy(model, dd), abs=1e-6)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.resumed_from_epoch == 0
    # cosine schedule over 3 epochs, recorded at the start of each epoch
    lrs = [row["lr"] for row in result.history]
    assert lrs == pytest.approx([0.05, 0.05 * (1 + math.cos(math.pi / 3)) / 2,
                                 0.05 * (1 + math.cos(2 * math.pi / 3)) / 2])
    rows = list(csv.DictReader(log.open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert float(rows[-1]["test_accuracy"]) == result.last["test_accuracy"]


def test_constant_schedule_keeps_lr(small_data):
    result = train.fit(fresh_model(), small_data, config(epochs=2, schedule="constant", lr=0.02),
                       name="t")
    assert [row["lr"] for row in result.history] == [0.02, 0.02]


def lr_per_step(cfg, steps_per_epoch: int) -> list[float]:
    """The rate of every optimizer step under cfg's schedule, as fit steps it."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=cfg.lr)
    scheduler, per_step = train._schedule(optimizer, cfg, steps_per_epoch)
    rates = []
    for _ in range(cfg.epochs):
        for _ in range(steps_per_epoch):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            if per_step:
                scheduler.step()
        if not per_step:
            scheduler.step()
    return rates


def test_cosine_per_epoch_is_flat_within_an_epoch():
    """The study's schedule: a 1-epoch fine-tune runs at its full rate throughout."""
    assert lr_per_step(config(epochs=1, lr=0.01), 4) == [0.01] * 4
    rates = lr_per_step(config(epochs=2, lr=0.01), 3)
    assert rates[:3] == [0.01] * 3 and rates[3:] == pytest.approx([0.005] * 3)


def test_cosine_per_iteration_anneals_within_an_epoch():
    rates = lr_per_step(config(epochs=1, lr=0.01, schedule="cosine_iter"), 4)
    expected = [0.01 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)]
    assert rates == pytest.approx(expected)
    assert rates[-1] < 0.0015


def test_warmup_ramps_linearly_then_follows_the_schedule():
    rates = lr_per_step(config(epochs=3, lr=0.1, schedule="cosine_iter", warmup_epochs=1), 2)
    assert rates[:2] == pytest.approx([0.05, 0.1])  # (step + 1) / warm-up steps
    assert rates[2:] == pytest.approx([0.1 * (1 + math.cos(math.pi * k / 4)) / 2 for k in range(4)])
    assert lr_per_step(config(epochs=2, lr=0.1, schedule="constant", warmup_epochs=1), 2) == \
        pytest.approx([0.05, 0.1, 0.1, 0.1])


def test_a_custom_loss_is_used(small_data):
    seen = []

    def loss_fn(logits, x, y):
        seen.append((tuple(logits.shape), tuple(x.shape), tuple(y.shape)))
        return torch.nn.functional.cross_entropy(logits, y) * 0  # no gradient: weights keep still

    model = fresh_model()
    before = {k: v.clone() for k, v in model.state_dict().items() if "weight" in k}
    train.fit(model, small_data, config(epochs=1, batch_size=128, momentum=0.0, weight_decay=0.0),
              name="t", loss_fn=loss_fn)
    assert seen == [((128, 10), (128, 3, 32, 32), (128,))] * 2
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items() if "conv" in k)


def test_constraint_runs_after_every_step(small_data):
    calls = []

    def constraint(model):
        calls.append(1)
        with torch.no_grad():
            model.layer2[0].conv1.weight[0].zero_()  # a pruned filter stays pruned

    model = fresh_model()
    train.fit(model, small_data, config(epochs=2), name="t", constraint=constraint)
    steps = math.ceil(256 / 64)
    assert len(calls) == 1 + 2 * steps, "once before training, then after every optimizer step"
    assert torch.count_nonzero(model.layer2[0].conv1.weight[0]) == 0


# ---- resume ----------------------------------------------------------------------------------------

def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, small_data):
    cfg = config(epochs=4)
    straight = fresh_model()
    expected = train.fit(straight, small_data, cfg, name="t")

    resume = tmp_path / "runs" / "resume.pt"
    interrupted_data = device_data(256, 100)
    interrupt_in_epoch(interrupted_data, epoch=3)
    with pytest.raises(KeyboardInterrupt):
        train.fit(fresh_model(), interrupted_data, cfg, name="t", resume_path=resume)
    saved = checkpoint.load(resume, kind="resume")
    assert saved["epoch"] == 2 and len(saved["history"]) == 2

    resumed_model = fresh_model()
    resumed = train.fit(resumed_model, small_data, cfg, name="t", resume_path=resume)

    assert resumed.resumed_from_epoch == 2
    assert_same_weights(resumed_model, straight)
    assert without_timing(resumed.history) == without_timing(expected.history)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert not resume.exists(), "the resume checkpoint is deleted when training finishes"
    assert list(resume.parent.iterdir()) == [], "and no temporary files are left"


def dropout_net(seed: int = 0) -> torch.nn.Module:
    """A classifier that draws from torch's global RNG while it trains (as vgg11_bn does)."""
    from torch import nn
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Dropout(0.5), nn.Linear(32, 10))


def test_dropout_draws_repeat_whatever_the_global_rng_held(tmp_path, small_data):
    """A stage process starts with a random global seed; the fine-tune stages do not seed it
    themselves, so each epoch's draws (Dropout) come from (cfg.seed, epoch): two fits of the same
    model from different global states give the same weights, a resumed fit too, and the
    caller's global RNG is left as it was."""
    cfg = config(epochs=3, seed=7)
    runs = []
    for state in (1, 2):
        model = dropout_net()
        torch.manual_seed(state)
        before = torch.get_rng_state()
        train.fit(model, small_data, cfg, name="t")
        assert torch.equal(torch.get_rng_state(), before), "the caller's RNG is restored"
        runs.append(model)
    assert_same_weights(runs[0], runs[1])
    other = dropout_net()
    train.fit(other, small_data, config(epochs=3, seed=8), name="t")
    assert not all(torch.equal(a, b) for a, b in zip(other.state_dict().values(),
                                                     runs[0].state_dict().values()))
    resume = tmp_path / "resume.pt"
    interrupted = device_data(256, 100)
    interrupt_in_epoch(interrupted, epoch=2)
    with pytest.raises(KeyboardInterrupt):
        train.fit(dropout_net(), interrupted, cfg, name="t", resume_path=resume)
    resumed = dropout_net()
    torch.manual_seed(3)
    train.fit(resumed, small_data, cfg, name="t", resume_path=resume)
    assert_same_weights(resumed, runs[0])


def test_resume_checkpoint_of_other_settings_is_ignored(tmp_path, small_data):
    resume = tmp_path / "resume.pt"
    interrupted_data = device_data(256, 100)
    interrupt_in_epoch(interrupted_data, epoch=2)
    with pytest.raises(KeyboardInterrupt):
        train.fit(fresh_model(), interrupted_data, config(epochs=2, lr=0.1), name="t",
                  resume_path=resume)
    assert checkpoint.load(resume, kind="resume")["epoch"] == 1

    result = train.fit(fresh_model(), small_data, config(epochs=2, lr=0.05), name="t",
                       resume_path=resume)
    assert result.resumed_from_epoch == 0
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert not resume.exists()


def test_corrupt_resume_checkpoint_is_ignored(tmp_path, small_data, capsys):
    resume = tmp_path / "resume.pt"
    resume.write_bytes(b"\x00" * 64)
    result = train.fit(fresh_model(), small_data, config(epochs=1), name="t", resume_path=resume)
    assert result.resumed_from_epoch == 0 and len(result.history) == 1
    assert "ignoring resume checkpoint" in capsys.readouterr().out
    assert not resume.exists()


# ---- divergence ------------------------------------------------------------------------------------

def test_nan_loss_raises_training_diverged(tmp_path, small_data):
    steps_per_epoch = math.ceil(256 / 64)
    calls = []

    def poison_in_epoch_2(model):
        calls.append(1)
        if len(calls) == 1 + steps_per_epoch + 1:  # after the first step of epoch 2
            with torch.no_grad():
                model.linear.weight[0, 0] = float("nan")

    log = tmp_path / "train.csv"
    resume = tmp_path / "resume.pt"
    with pytest.raises(train.TrainingDiverged) as info:
        train.fit(fresh_model(), small_data, config(epochs=3, lr=0.05), name="finetune",
                  log_path=log, resume_path=resume, constraint=poison_in_epoch_2)
    message = str(info.value)
    assert "epoch 2" in message
    assert "learning rate" in message and "0.05" in message
    assert "nan" in message
    assert [int(r["epoch"]) for r in csv.DictReader(log.open())] == [1], "epoch 2 was not logged"
    assert checkpoint.load(resume, kind="resume")["epoch"] == 1, "epoch 1 is still resumable"


def test_huge_learning_rate_diverges(small_data):
    with pytest.raises(train.TrainingDiverged, match=r"epoch 1;.*learning rate \(lr is 1000000.0\)"):
        train.fit(fresh_model(), small_data, config(epochs=2, lr=1e6, momentum=0.0), name="t")


# ---- history CSV ------------------------------------------------------------------------------------

def test_write_history(tmp_path):
    history = [
        {"epoch": 1, "train_loss": 2.1, "train_accuracy": 0.2, "test_accuracy": 0.25, "lr": 0.1,
         "epoch_seconds": 1.5, "images_per_second": 1333.3},
        {"epoch": 2, "train_loss": 1.4, "train_accuracy": 0.5, "test_accuracy": 0.55, "lr": 0.05,
         "epoch_seconds": 1.4, "images_per_second": 1428.6},
    ]
    path = tmp_path / "plots" / "history.csv"
    write_history(path, history)
    with path.open() as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert tuple(reader.fieldnames) == HISTORY_COLUMNS == (
        "epoch", "train_loss", "train_accuracy", "test_accuracy", "lr", "epoch_seconds",
        "images_per_second")
    assert [{k: float(v) for k, v in row.items()} for row in rows] == history
    assert path.read_text().endswith("\n")
    assert [p.name for p in path.parent.iterdir()] == ["history.csv"]


def test_write_history_empty(tmp_path):
    path = tmp_path / "history.csv"
    write_history(path, [])
    assert path.read_text() == ",".join(HISTORY_COLUMNS) + "\n"


# ---- run identity ------------------------------------------------------------------------------------

def test_fingerprint_depends_on_config_spec_device_and_extra():
    cpu = torch.device("cpu")
    base = train.fingerprint(config(), fresh_model(4), cpu)
    assert base == train.fingerprint(config(), fresh_model(4, seed=1), cpu), "weights are not part of it"
    assert base != train.fingerprint(config(lr=0.1), fresh_model(4), cpu)
    assert base != train.fingerprint(config(), fresh_model(8), cpu)
    assert base != train.fingerprint(config(), fresh_model(4), cpu, {"amount": 0.5})
    # a resume file written on another device (its RNG state has another size) is not this run's
    assert base != train.fingerprint(config(), fresh_model(4), torch.device("cuda"))
    assert len(base) == 16


def test_a_resume_file_that_does_not_fit_is_ignored_and_changes_nothing(tmp_path, small_data,
                                                                        capsys):
    """A resume file with this run's id whose RNG state has another size (as one written on
    another device would): a one-line notice, training from epoch 1, the same result as a fresh
    run."""
    cfg = config(epochs=2)
    resume = tmp_path / "resume.pt"
    model = fresh_model()
    run_id = train.fingerprint(cfg, model, torch.device("cpu"))
    checkpoint.save(resume, {"kind": "resume", "run_id": run_id, "epoch": 1,
                             "state_dict": fresh_model(seed=5).state_dict(),
                             "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
                             "scheduler": {}, "generator": torch.zeros(3, dtype=torch.uint8),
                             "history": [{"epoch": 1}]})
    result = train.fit(model, small_data, cfg, name="t", resume_path=resume)
    out = capsys.readouterr().out
    assert "ignoring resume checkpoint" in out and "does not fit this run" in out
    assert result.resumed_from_epoch == 0 and [r["epoch"] for r in result.history] == [1, 2]
    fresh = fresh_model()
    expected = train.fit(fresh, small_data, cfg, name="t")
    assert without_timing(result.history) == without_timing(expected.history)
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in model.state_dict().items())


# ---- the estimate of a run, and the deterministic option ----------------------------------------

def test_estimate_lines_give_the_measured_duration_and_the_cpu_profile_hint():
    # 50,000 + 10,000/3 images per epoch at 100 img/s: 533.3 s per epoch
    lines = train.estimate_lines("baseline", 100.0, 30, 200, 50_000, 10_000, "cpu", 64)
    assert lines[0] == ("baseline: about 29.6 h for the 200 epochs left (100 img/s over 30 "
                        "batches on cpu, per-epoch evaluation estimated)")
    assert "python -m squeeze profile cpu" in lines[1] and len(lines) == 2
    assert len(train.estimate_lines("baseline", 100.0, 30, 200, 50_000, 10_000, "cuda", 64)) == 1
    assert len(train.estimate_lines("baseline", 100.0, 30, 12, 50_000, 10_000, "cpu", 16)) == 1
    assert train.estimate_lines("s0.5", 5000.0, 30, 3, 50_000, 10_000, "cuda", 32)[0].startswith(
        "s0.5: about 32 s for the 3 epochs left")


def test_fit_prints_its_estimate_once(small_data, capsys):
    # 256 images at batch 4: the estimate comes 35 batches in, inside the first epoch of 64
    train.fit(fresh_model(), small_data, config(epochs=2, batch_size=4), name="tiny")
    out = capsys.readouterr().out
    found = [line for line in out.splitlines() if "for the 2 epochs left" in line]
    assert len(found) == 1 and found[0].startswith("tiny: about ") and " img/s over 30 " in found[0]
    assert out.index(found[0]) < out.index("tiny epoch 1/2")
    assert "profile cpu" not in out  # width 4 is not the study's width


def test_deterministic_fit_sets_and_restores_the_global_switches(small_data, monkeypatch):
    seen = []
    real = train._fit

    def spy(*args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(),
                     torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark))
        return real(*args, **kwargs)

    monkeypatch.setattr(train, "_fit", spy)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
              torch.backends.cudnn.benchmark)
    a, b = fresh_model(), fresh_model()
    train.fit(a, small_data, config(epochs=1, deterministic=True), name="det")
    train.fit(b, small_data, config(epochs=1), name="default")
    assert seen == [(True, True, False), before]
    assert_same_weights(a, b)  # on CPU the switch changes no number
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
            torch.backends.cudnn.benchmark) == before
