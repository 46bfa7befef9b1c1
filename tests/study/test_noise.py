"""The machine noise floor: real timing of a fixed workload, and the trial count it implies."""

import math
from collections import namedtuple

import pytest
import scipy.stats

import study.bench.noise
from study.bench.noise import NoiseFloor, StealMeter, noise_floor


def test_noise_floor_times_the_requested_trials():
    floor = noise_floor(seconds=1.0, trial_seconds=0.25, threads=1)
    assert floor.trials == 4 and floor.threads == 1 and floor.trial_seconds == 0.25
    assert floor.mean > 0 and floor.cv >= 0
    assert 0 < floor.min_ratio <= 1
    assert -1 <= floor.lag1 <= 1
    assert "machine noise floor" in str(floor) and "4 trials of 0.25 s" in str(floor)
    assert floor.to_dict()["cv"] == floor.cv


def _floor(cv: float) -> NoiseFloor:
    return NoiseFloor("w", 1, 1.0, 10, 100.0, cv, 0.0, 0.9)


@pytest.mark.parametrize("cv", [0.005, 0.03, 0.1, 0.14])
@pytest.mark.parametrize("target", [0.01, 0.05])
def test_trials_for_is_the_smallest_n_whose_ci_meets_the_target(cv, target):
    n = _floor(cv).trials_for(target)
    z = scipy.stats.norm.ppf(0.975)
    assert z * cv / math.sqrt(n) <= target + 1e-12
    if n > 2:
        assert z * cv / math.sqrt(n - 1) > target


def test_trials_for_at_another_confidence():
    assert _floor(0.1).trials_for(0.01, confidence=0.90) == math.ceil(
        (scipy.stats.norm.ppf(0.95) * 0.1 / 0.01) ** 2
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"trial_seconds": 0}, "`trial_seconds` must be > 0; got 0"),
        ({"seconds": 0.5, "trial_seconds": 0.25}, "`seconds` must be at least 3 trials"),
        ({"seconds": 1, "trial_seconds": 0.25, "threads": 0}, "`threads` must be an integer >= 1"),
        ({"seconds": 1, "trial_seconds": 0.25, "threads": 1.5}, "got 1.5"),
    ],
)
def test_bad_arguments_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        noise_floor(**kwargs)


@pytest.mark.parametrize(
    ("args", "message"),
    [((0,), "`target_ci` must be > 0"), ((0.01, 1.0), "`confidence` must be in")],
)
def test_trials_for_rejects_bad_targets(args, message):
    with pytest.raises(ValueError, match=message):
        _floor(0.1).trials_for(*args)


def _times(**fields):
    names = [
        "user",
        "nice",
        "system",
        "idle",
        "iowait",
        "irq",
        "softirq",
        "steal",
        "guest",
        "guest_nice",
    ]
    return namedtuple("scputimes", names)(**{n: fields.get(n, 0.0) for n in names})


def test_steal_meter_is_the_stolen_share_of_all_cpu_time(monkeypatch):
    readings = iter(
        [
            _times(user=100, system=10, idle=50, steal=5, guest=7),
            # +60 user, +10 system, +20 idle, +10 steal (+30 guest, inside user): 10 / 100.
            _times(user=160, system=20, idle=70, steal=15, guest=37),
        ]
    )
    monkeypatch.setattr(study.bench.noise.psutil, "cpu_times", lambda: next(readings))
    meter = StealMeter().start()
    assert meter.stop() == pytest.approx(0.10)


def test_steal_meter_without_steal_or_time_is_none(monkeypatch):
    plain = namedtuple("scputimes", ["user", "system", "idle"])
    readings = iter([plain(1, 1, 1), plain(2, 2, 2)])
    monkeypatch.setattr(study.bench.noise.psutil, "cpu_times", lambda: next(readings))
    assert StealMeter().start().stop() is None  # a kernel that does not report steal
    same = _times(user=5, steal=1)
    monkeypatch.setattr(study.bench.noise.psutil, "cpu_times", lambda: same)
    assert StealMeter().start().stop() is None  # no CPU time passed


def test_steal_meter_reads_this_machine():
    meter = StealMeter().start()
    sum(i * i for i in range(200_000))
    steal = meter.stop()
    assert steal is None or 0.0 <= steal <= 1.0


def test_steal_meter_stop_before_start_is_an_error():
    with pytest.raises(RuntimeError, match="before start"):
        StealMeter().stop()
