"""course_utils.checkpoints: atomic writes, safe loading, clear mismatch messages."""

import pickle

import pytest
import torch
from torch import nn

from course_utils.checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_weights,
    read_checkpoint,
    save_checkpoint,
    save_weights,
)


def small_model():
    return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))


def test_round_trip_restores_model_optimizer_and_extra(tmp_path):
    model = small_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(5, 3)).sum().backward()
    optimizer.step()
    path = save_checkpoint(
        tmp_path / "a" / "last.pt", model, optimizer=optimizer, epoch=3, extra={"note": "hi"}
    )

    fresh = small_model()
    fresh_optimizer = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    state = load_checkpoint(path, fresh, optimizer=fresh_optimizer)
    assert state["epoch"] == 3 and state["extra"] == {"note": "hi"}
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    assert fresh_optimizer.state_dict()["state"][0]["momentum_buffer"].equal(
        optimizer.state_dict()["state"][0]["momentum_buffer"]
    )


def test_weights_round_trip(tmp_path):
    model = small_model()
    save_weights(model, tmp_path / "w.pt", metadata={"accuracy": 0.99})
    loaded = load_weights(small_model(), tmp_path / "w.pt")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    assert read_checkpoint(tmp_path / "w.pt")["extra"]["metadata"] == {"accuracy": 0.99}


def test_wrong_model_is_explained(tmp_path):
    save_weights(small_model(), tmp_path / "w.pt")
    other = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(CheckpointError) as caught:
        load_weights(other, tmp_path / "w.pt")
    message = str(caught.value)
    assert "belongs to another model" in message
    assert "0.weight: checkpoint has shape (4, 3), model has (8, 3)" in message
    assert "Build the same model" in message


def test_missing_and_truncated_files_are_explained(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        read_checkpoint(tmp_path / "nothing.pt")
    path = save_weights(small_model(), tmp_path / "w.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cannot read checkpoint.*truncated"):
        read_checkpoint(path)


def test_arbitrary_pickles_are_never_executed(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "course_utils.checkpoint/1", "payload": Evil()}, path, pickle_module=pickle)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        read_checkpoint(path)


def test_plain_state_dict_is_not_mistaken_for_a_checkpoint(tmp_path):
    torch.save(small_model().state_dict(), tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not a course_utils checkpoint"):
        read_checkpoint(tmp_path / "plain.pt")


def test_an_interrupted_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    model = small_model()
    path = save_checkpoint(tmp_path / "last.pt", model, epoch=1)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, epoch=2)
    monkeypatch.undo()
    assert read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_the_grad_scaler_state_round_trips_and_no_scheduler_is_needed(tmp_path):
    model = small_model()
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=1024.0)
    path = save_checkpoint(tmp_path / "last.pt", model, scaler=scaler, epoch=4)
    assert "scheduler_state" not in read_checkpoint(path)  # the learning rate comes from the step
    fresh = torch.amp.GradScaler("cpu", enabled=True)
    load_checkpoint(path, small_model(), scaler=fresh)
    assert fresh.get_scale() == 1024.0
