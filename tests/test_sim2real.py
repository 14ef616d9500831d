"""The sim-to-real gap: Fieller's ratio interval on arrays, the sim2real report, and parameter sweeps."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from tiny import tiny

from rltransfer.cli import main
from rltransfer.config import load_family
from rltransfer.errors import ConfigError, ParameterBoundsError, UnknownNameError
from rltransfer.pipeline import train
from rltransfer.sim2real import (
    Axis,
    check_axes,
    fieller_ratio_ci,
    format_table,
    parse_axis,
    policy_labels,
    retained_fraction,
    sim2real,
    sweep,
    sweep_grid,
    write_sweep,
)

# ------------------------------------------------------------------------------------------ statistics


def test_fieller_with_an_exact_numerator_is_the_t_interval_of_the_denominator_inverted() -> None:
    # num constant (variance 0): df = m - 1 = 2 and the interval is ybar / (xbar -+ t * s_x / sqrt(m))
    t = 4.302652729911275  # t(0.975, 2)
    half = t * 1.0 / math.sqrt(3)  # s_x = 1 for [9, 10, 11]
    ci = fieller_ratio_ci(np.array([5.0, 5.0, 5.0]), np.array([9.0, 10.0, 11.0]))
    assert ci.ratio == 0.5 and ci.bounded
    assert ci.low == pytest.approx(5 / (10 + half), rel=1e-9) and ci.high == pytest.approx(5 / (10 - half), rel=1e-9)
    assert ci.low == pytest.approx(0.400508, abs=1e-6) and ci.high == pytest.approx(0.665260, abs=1e-6)


def test_fieller_hand_computed_with_both_variances() -> None:
    # num [4, 6]: ybar 5, vy = 2/2 = 1; den [8, 12]: xbar 10, vx = 8/2 = 4; ratio 0.5
    # Welch df at 0.5: (1 + 0.25*4)^2 / (1/1 + 0.0625*16/1) = 4 / 2 = 2  -> t^2 = 4.302652729911275^2 = 18.5128205
    # a r^2 - 2 b r + c <= 0 with a = 100 - 4 t^2 = 25.9487179, b = 50, c = 25 - t^2 = 6.4871795
    # roots (b -+ sqrt(b^2 - a c)) / a = (50 -+ 48.28731) / 25.94872 = 0.0660022, 3.7877527
    ci = fieller_ratio_ci(np.array([4.0, 6.0]), np.array([8.0, 12.0]))
    assert ci.ratio == 0.5 and ci.bounded
    assert ci.low == pytest.approx(0.0660022, abs=1e-6) and ci.high == pytest.approx(3.7877527, abs=1e-6)


def test_fieller_is_unbounded_when_the_denominator_mean_is_not_clearly_nonzero() -> None:
    ci = fieller_ratio_ci(np.array([4.0, 6.0, 5.0]), np.array([-1.0, 2.0, 1.0]))
    assert ci.ratio == pytest.approx(7.5) and not ci.bounded and ci.to_dict()["ci95"] is None and ci.to_dict()["bounded"] is False


def test_fieller_degenerate_and_invalid_inputs() -> None:
    ci = fieller_ratio_ci(np.full(5, 300.0), np.full(5, 500.0))
    assert (ci.ratio, ci.low, ci.high) == (0.6, 0.6, 0.6)
    assert math.isnan(fieller_ratio_ci(np.ones(3), np.array([-1.0, 0.0, 1.0])).ratio)
    with pytest.raises(ConfigError, match="at least 2"):
        fieller_ratio_ci(np.ones(1), np.ones(3))
    with pytest.raises(ConfigError, match="finite"):
        fieller_ratio_ci(np.array([1.0, np.nan]), np.ones(3))


def test_retained_fraction_shifts_by_the_lowest_return() -> None:
    ci = retained_fraction(np.array([-800.0, -800.0]), np.array([-400.0, -400.0]), low=-1600.0)
    assert ci.ratio == pytest.approx(800 / 1200)


def test_fieller_covers_the_true_ratio_about_95_percent_of_the_time_at_n_20() -> None:
    rng = np.random.default_rng(0)
    true_ratio, hits = 60.0 / 100.0, 0
    draws = 500
    for _ in range(draws):
        real, sim = rng.normal(60.0, 25.0, 20), rng.normal(100.0, 30.0, 20)
        ci = retained_fraction(real, sim)
        hits += ci.low <= true_ratio <= ci.high
    assert 0.92 <= hits / draws <= 0.975, hits / draws


# ------------------------------------------------------------------------------------------ tables, axes


def test_table_keeps_identifiers_whole() -> None:
    label = "a-very-long-policy-name-that-would-wrap-in-a-narrow-terminal__ppo__0__20250101"
    text = format_table(["policy", "x"], [[label, "1"], ["b", "22"]])
    lines = text.splitlines()
    assert lines[2].startswith(label + "  1") and lines[3].split() == ["b", "22"]


def test_policy_labels() -> None:
    assert policy_labels(["runs/a/policy", "runs/b/policy", "zoo/ppo-x.zip"]) == ["a", "b", "ppo-x"]
    assert policy_labels(["x/a/policy", "y/a/policy"]) == ["x/a/policy", "y/a/policy"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("length", "expected NAME=LOW:HIGH:N"),
        ("length=0.3:1.0", "expected NAME=LOW:HIGH:N"),
        ("length=a:1:3", "must be numbers"),
        ("length=0.3:1:2.5", "N must be an integer"),
        ("length=0.3:1:1", "at least 2 grid points"),
        ("length=1:1:3", "need LOW < HIGH"),
    ],
)
def test_malformed_axes_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_axis(text)


def test_axes_are_checked_against_the_family() -> None:
    family = load_family("cartpole")
    assert parse_axis("length=0.3:1.0:8") == Axis("length", 0.3, 1.0, 8)
    with pytest.raises(UnknownNameError, match="Did you mean: 'length'"):
        check_axes(family, [parse_axis("lenght=0.3:1:3")])
    with pytest.raises(ParameterBoundsError, match=r"--param length: high 9 is outside the hard bounds \[0.05, 5\]"):
        check_axes(family, [parse_axis("length=0.3:9:3")])
    with pytest.raises(ConfigError, match="one .* or two"):
        check_axes(family, [parse_axis(f"{p}=1:2:2") for p in ("length", "gravity", "force_mag")])


def test_grid_order_first_axis_slowest() -> None:
    grid = sweep_grid([Axis("a", 0.0, 1.0, 2), Axis("b", 10.0, 30.0, 3)])
    assert grid == [{"a": 0.0, "b": 10.0}, {"a": 0.0, "b": 20.0}, {"a": 0.0, "b": 30.0},
                    {"a": 1.0, "b": 10.0}, {"a": 1.0, "b": 20.0}, {"a": 1.0, "b": 30.0}]


# ------------------------------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def policies(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("runs")
    dr = train("cartpole", tiny("ppo", "cartpole"), steps=64, seed=0, out=out, name="cp-dr", eval_freq=0,
               eval_episodes=1, randomize="dr")
    nominal = train("cartpole", tiny("ppo", "cartpole"), steps=64, seed=1, out=out, name="cp-nominal", eval_freq=0,
                    eval_episodes=1)
    return [dr.policy_dir, nominal.policy_dir]


def test_sim2real_report_and_json(policies: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gap.json"
    code = main(["sim2real", *[a for p in policies for a in ("--policy", str(p))], "--env", "cartpole",
                 "--episodes", "3", "--json", str(out)])
    table = capsys.readouterr().out
    assert code == 0
    assert "policy" in table and "retained" in table and "cp-dr       real" in table
    data = json.loads(out.read_text())
    assert data["env"] == "cartpole" and data["episodes"] == 3 and data["sim"]["randomize"] is None
    first = data["policies"][0]
    assert first["label"] == "cp-dr" and first["trained_with"] == {"randomization": "dr", "variant": None}
    assert set(first["sim"]) >= {"mean", "std", "ci95", "returns"} and len(first["sim"]["returns"]) == 3
    (real,) = first["variants"]
    assert real["variant"] == "real" and len(real["returns"]) == 3
    assert set(real["retained"]) == {"ratio", "ci95", "bounded", "level", "method"}
    expected = retained_fraction(np.array(real["returns"]), np.array(first["sim"]["returns"]))
    assert real["retained"]["ratio"] == pytest.approx(expected.ratio)
    # the same episodes for every policy and on every call
    again = sim2real(policies[:1], "cartpole", episodes=3)
    assert again.rows[0].real["returns"] == real["returns"]
    code = main(["sim2real", "--policy", str(policies[0]), "--env", "cartpole", "--episodes", "2",
                 "--sim-randomize", "dr", "--variant", "real", "--json", "-"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["sim"]["randomize"] == "dr"


def test_sweep_writes_csv_and_png_on_the_grid(policies: list[Path], tmp_path: Path) -> None:
    axes = [parse_axis("pole_mass=0.05:0.5:4")]
    result = sweep(policies, "cartpole", axes, episodes=2, seed=3)
    assert result.returns.shape == (2, 4, 2)
    assert result.training == [{"pole_mass": (0.05, 0.2)}, {}]  # from cp-dr's manifest
    assert result.variants == {"real": {"pole_mass": 0.25}}
    csv_path, png_path = write_sweep(result, tmp_path / "sweep")
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["policy"] for r in rows] == ["cp-dr"] * 4 + ["cp-nominal"] * 4
    assert [float(r["pole_mass"]) for r in rows[:4]] == pytest.approx([0.05, 0.2, 0.35, 0.5])
    assert set(rows[0]) == {"policy", "pole_mass", "mean", "std", "ci95_low", "ci95_high", "episodes"}
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_on_a_variant_keeps_its_sensors(policies: list[Path]) -> None:
    """Every point of a variant sweep is the variant (its sensors included) with the swept value in place."""
    from rltransfer.evaluation import evaluate

    axes = [parse_axis("pole_mass=0.1:0.3:2")]
    plain = sweep(policies[:1], "cartpole", axes, episodes=3, seed=3)
    real = sweep(policies[:1], "cartpole", axes, episodes=3, seed=3, variant="real")
    assert real.sensors_of == "real" and "sensors of 'real'" in real.title
    for j, point in enumerate(real.points):
        expected = evaluate(policies[0], "cartpole", point, episodes=3, seed=3, variant="real")
        assert real.returns[0, j].tolist() == list(expected.returns)
    assert not np.array_equal(plain.returns, real.returns)
    with pytest.raises(UnknownNameError, match="Did you mean: 'real'"):
        sweep(policies[:1], "cartpole", axes, episodes=1, variant="rael")


def test_sweep_two_parameters_from_the_cli(policies: list[Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sweep2"
    code = main(["sweep", "--policy", str(policies[0]), "--env", "cartpole", "--param", "pole_mass=0.05:0.5:2",
                 "--param", "length=0.3:1.0:3", "--episodes", "1", "--out", str(out)])
    assert code == 0 and "csv:" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "sweep.csv").open()))
    assert len(rows) == 6 and {"pole_mass", "length"} <= set(rows[0])
    assert (out / "sweep.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["sim2real", "--env", "cartpole", "--variant", "rael"], "Did you mean: 'real'"),
        (["sim2real", "--env", "cartpole", "--sim-randomize", "dx"], "Did you mean: 'dr'"),
        (["sim2real", "--env", "cartpole", "--episodes", "1"], "--episodes must be at least 2"),
        (["sweep", "--env", "cartpole", "--param", "lenght=0.3:1:3"], "Did you mean: 'length'"),
        (["sweep", "--env", "cartpole", "--param", "length=0.01:1:3"],
         "--param length: low 0.01 is outside the hard bounds [0.05, 5]"),
        (["sweep", "--env", "cartpole", "--param", "length=0.3:1"], "expected NAME=LOW:HIGH:N"),
        (["sweep", "--env", "cartpole", "--param", "length=0.3:1:1"], "N must be at least 2"),
        (["sweep", "--env", "cartpole", "--param", "length=0.3:1:3", "--set", "length=1"], "give it in one place"),
        (["evaluate", "--env", "cartpole", "--variant", "rael"], "Did you mean: 'real'"),
        (["evaluate", "--env", "cartpole", "--randomize", "dx"], "Did you mean: 'dr'"),
        (["transfer", "--env", "cartpole", "--randomize", "dx", "--steps", "64"], "Did you mean: 'dr'"),
        (["transfer", "--env", "cartpole", "--variant", "rael", "--steps", "64"], "Did you mean: 'real'"),
    ],
)
def test_bad_inputs_exit_2_with_one_line(args: list[str], expected: str, policies: list[Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    flag = "--from" if args[0] == "transfer" else "--policy"
    extra = ["--out", str(tmp_path / "out")] if args[0] in ("sweep", "transfer") else []
    code = main([args[0], flag, str(policies[0]), *args[1:], *extra])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("rltransfer: error:") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()  # checked before anything is written
