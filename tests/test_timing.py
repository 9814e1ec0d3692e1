"""course_utils.timing: timers and latency."""

import time

import pytest
import torch
from torch import nn

from course_utils.timing import Timer, measure_latency


def test_timer_measures_wall_time():
    with Timer() as timer:
        time.sleep(0.05)
    assert 0.04 < timer.seconds < 1.0


def test_measure_latency_restores_mode_and_orders_statistics():
    model = nn.Sequential(nn.Linear(16, 16), nn.Dropout(0.5)).train()
    latency = measure_latency(model, torch.randn(4, 16), warmup=1, repeats=7)
    assert latency.repeats == 7
    assert 0 < latency.low <= latency.median <= latency.high
    assert model.training
    assert "ms" in str(latency)


def test_measure_latency_rejects_zero_repeats():
    with pytest.raises(ValueError, match="repeats must be at least 1"):
        measure_latency(nn.Linear(2, 2), torch.randn(1, 2), repeats=0)
