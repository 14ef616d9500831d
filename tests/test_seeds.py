"""Seeds: added until decided (rltransfer/sequential.py and the runner) and variance from the source
(``source_seeds``, rltransfer/arms.py, ``analysis.nested_comparison``).

What is asserted:

* the design: look sizes, boundaries that spend exactly the spending function (recursive integration checked
  against Monte Carlo), one look = the fixed verdict;
* the error under optional stopping, on every synthetic curve family's null (8000 comparisons per case,
  looks 3/5/7/8 and 3/5/7/9/11, every spending function): the total false-verdict rate (either sign) is at
  most 5% with its Clopper-Pearson upper bound below 6%, while looking at 5% every round is not; Holm across
  three comparisons (two sharing scratch runs) keeps the family-wise rate at most 5%; at a clear effect the
  design stops early with the fixed design's power;
* the settings (``until_decided``, ``source_seeds``) and what they do to the runs: task keys, dependencies,
  which source each target seed loads, and every fingerprint unchanged with one source;
* a tiny real suite run until decided: the clear pair stops at the first look, the null pair goes on to the
  maximum, and rerunning the command runs nothing.

The simulations are vectorized over comparisons (about 10 s); the real suite takes about a minute.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import yaml

from rltransfer import sequential as sq
from rltransfer import synthetic as sy
from rltransfer.arms import source_keys
from rltransfer.benchmark import expand, is_done, load_suite, run_suite, sequential_state, with_until_decided
from rltransfer.errors import ConfigError
from rltransfer.statistics import clopper_pearson, verdict_labels
from tests.test_benchmark import TINY_AGENT, tiny_suite, write_yaml

ALPHA = 0.05
BOUND = 0.06
N_NULL = 8000
FAMILIES = tuple(sorted(sy.FAMILIES))
SCHEDULES = ((3, 5, 7, 8), (3, 5, 7, 9, 11))


def rate_with_bound(hits: np.ndarray) -> tuple[float, float]:
    k, n = int(np.sum(hits)), int(np.size(hits))
    return k / n, clopper_pearson(k, n)[1]


# ---------------------------------------------------------------------------------------------- the design


def test_look_sizes() -> None:
    assert sq.look_sizes(3, 2, 8) == (3, 5, 7, 8)
    assert sq.look_sizes(3, 2, 9) == (3, 5, 7, 9)
    assert sq.look_sizes(8, 2, 8) == (8,)
    assert sq.look_sizes(3, 10, 8) == (3, 8)
    with pytest.raises(ConfigError, match="max_seeds"):
        sq.look_sizes(5, 2, 4)
    with pytest.raises(ConfigError, match="first must be an integer >= 2"):
        sq.look_sizes(1, 2, 8)
    with pytest.raises(ConfigError, match="strictly increasing"):
        sq.SequentialDesign((3, 3, 5))
    with pytest.raises(ConfigError, match="Did you mean: 'pocock'"):
        sq.SequentialDesign((3, 5), spending="pocok")  # type: ignore[arg-type]


@pytest.mark.parametrize("spending", sq.SPENDING)
def test_one_look_is_the_fixed_test(spending: str) -> None:
    assert sq.z_boundaries((8,), ALPHA, spending) == pytest.approx([1.959964], abs=1e-5)  # type: ignore[arg-type]
    batch = sy.simulate_pairs("unequal_spread", 4000, 5, effect=1.0, random_state=3)
    mt, ms = batch.metrics()
    design = sq.SequentialDesign((5,), ALPHA, spending)  # type: ignore[arg-type]
    labels, seeds = sq.replay_labels(mt["auc"], ms["auc"], design)
    assert np.array_equal(labels, verdict_labels(mt["auc"], ms["auc"])) and np.all(seeds == 5)


@pytest.mark.parametrize("looks", [(3, 5, 7, 8), (2, 4, 6, 8, 10, 12), (5, 10)])
@pytest.mark.parametrize("spending", ["obrien-fleming", "pocock"])
def test_boundaries_spend_exactly_the_spending_function(looks: tuple[int, ...], spending: str) -> None:
    fractions = np.array(looks) / looks[-1]
    spent = sq.alpha_spent(fractions, ALPHA, spending)  # type: ignore[arg-type]
    crossed = np.cumsum(sq.crossing_probabilities(looks, ALPHA, spending))  # type: ignore[arg-type]
    assert crossed == pytest.approx(spent, abs=2e-6)
    # and by Monte Carlo: z statistics of a Brownian motion observed at the looks
    rng = np.random.default_rng(len(looks))
    n = 400_000
    steps = np.diff(np.concatenate([[0.0], fractions]))
    z = np.cumsum(rng.normal(size=(n, len(looks))) * np.sqrt(steps), axis=1) / np.sqrt(fractions)
    hit = np.abs(z) >= sq.z_boundaries(looks, ALPHA, spending)  # type: ignore[arg-type]
    first = np.where(hit.any(axis=1), np.argmax(hit, axis=1), -1)
    for k in range(len(looks)):
        want = spent[k] - (spent[k - 1] if k else 0.0)
        se = np.sqrt(want * (1 - want) / n)
        assert abs(np.mean(first == k) - want) < 4 * se + 1e-5, (k, np.mean(first == k), want)


def test_published_boundaries() -> None:
    # Lan-DeMets Pocock-type, two looks at 1/2 and 1, two-sided 5%: 2.157, 2.201 (Jennison & Turnbull table 7.6)
    assert sq.z_boundaries((5, 10), ALPHA, "pocock") == pytest.approx([2.157, 2.201], abs=1e-3)
    # O'Brien-Fleming-type: the first boundary is z_{1 - alpha/2} / sqrt(t) exactly
    assert sq.z_boundaries((5, 10), ALPHA)[0] == pytest.approx(1.959964 / np.sqrt(0.5), abs=1e-5)
    assert sq.nominal_levels((3, 5, 7, 8)) == pytest.approx([0.00137, 0.01264, 0.03125, 0.03653], abs=2e-5)
    assert sq.z_boundaries((3, 5, 7, 8), ALPHA, "bonferroni") == pytest.approx([2.4977] * 4, abs=1e-4)


# ------------------------------------------------------------------------------- error under optional stopping


@cache
def null_auc(family: str, n_max: int) -> tuple[np.ndarray, np.ndarray]:
    batch = sy.simulate_pairs(family, N_NULL, n_max, random_state=700 + 10 * FAMILIES.index(family) + n_max)
    mt, ms = batch.metrics()
    return mt["auc"], ms["auc"]


@pytest.mark.parametrize("looks", SCHEDULES, ids=lambda v: "-".join(map(str, v)))
@pytest.mark.parametrize("family", FAMILIES)
def test_total_false_verdicts_at_most_alpha_under_optional_stopping(family: str, looks: tuple[int, ...]) -> None:
    t, s = null_auc(family, looks[-1])
    for spending in sq.SPENDING:
        design = sq.SequentialDesign(looks, ALPHA, spending)  # type: ignore[arg-type]
        labels, seeds = sq.replay_labels(t, s, design)
        rate, upper = rate_with_bound(labels != "inconclusive")
        assert rate <= ALPHA and upper < BOUND, (family, looks, spending, rate, upper)
        assert set(np.unique(seeds)) <= set(looks)


def test_looking_at_five_percent_every_round_is_not_valid() -> None:
    """The control: a fixed 5% level at every look inflates the error (what the design is for)."""
    t, s = null_auc("logistic", 11)
    looks = SCHEDULES[1]
    _, p = sq.look_tests(t, s, looks)
    rate, _ = rate_with_bound(np.any(p < ALPHA, axis=-1))
    assert rate > 0.06, rate


def test_holm_across_comparisons_keeps_the_family_wise_error() -> None:
    """Three comparisons per suite (the quick suite's shape: two share their scratch runs), all null."""
    looks = (3, 5, 7, 8)
    n = N_NULL
    rng = np.random.default_rng(11)
    t = np.stack([sy.sample_curves("logistic", (n, 8), arm="transfer", random_state=rng) for _ in range(3)], axis=1)
    s01 = sy.sample_curves("logistic", (n, 8), random_state=rng)
    s2 = sy.sample_curves("logistic", (n, 8), random_state=rng)
    s = np.stack([s01, s01, s2], axis=1)
    kw = {"low": 0.0, "high": 500.0, "threshold": 350.0}
    auc_t = sy.batch_metrics(sy.DEFAULT_STEPS, t, **kw)["auc"]
    auc_s = sy.batch_metrics(sy.DEFAULT_STEPS, s, **kw)["auc"]
    labels, _ = sq.replay_labels(auc_t, auc_s, sq.SequentialDesign(looks, ALPHA))
    rate, upper = rate_with_bound(np.any(labels != "inconclusive", axis=1))
    assert rate <= ALPHA and upper < BOUND, (rate, upper)


def test_a_clear_effect_stops_early_with_the_fixed_power() -> None:
    looks = (3, 5, 7, 8)
    batch = sy.simulate_pairs("logistic", 4000, 8, effect=3.0, random_state=5)
    mt, ms = batch.metrics()
    labels, seeds = sq.replay_labels(mt["auc"], ms["auc"], sq.SequentialDesign(looks, ALPHA))
    fixed = verdict_labels(mt["auc"], ms["auc"])
    assert np.mean(labels == "positive") >= np.mean(fixed == "positive") - 0.01 >= 0.98
    assert seeds.mean() < 6.0  # of 8 seeds per arm


def test_replay_agrees_with_the_vectorized_rounds() -> None:
    """The runner's view (one suite, per-comparison objects, Holm) against :func:`replay_labels`."""
    design = sq.SequentialDesign((3, 5, 7, 8), ALPHA)
    rng = np.random.default_rng(2)
    effects = rng.choice([0.0, 0.0, 1.5, -3.0, 6.0], size=(300, 3))
    t = rng.normal(size=(300, 3, 8)) + effects[..., None]
    s = rng.normal(size=(300, 3, 8))
    labels, seeds = sq.replay_labels(t, s, design)
    for i in range(300):
        state = sq.replay({k: (t[i, k], s[i, k]) for k in range(3)}, design)
        assert state.complete and [state.decisions[k].label for k in range(3)] == list(labels[i])
        assert [state.decisions[k].seeds for k in range(3)] == list(seeds[i])


def test_replay_waits_for_missing_runs_and_says_what_comes_next() -> None:
    design = sq.SequentialDesign((3, 5, 7), ALPHA)
    clear_t, clear_s = np.array([10.0, 10.1, 9.9] + [np.nan] * 4), np.array([0.0, 0.1, -0.1] + [np.nan] * 4)
    null_t = np.array([0.3, -0.2, 0.5, 0.1, np.nan, np.nan, np.nan])
    null_s = np.array([0.1, 0.4, -0.3, np.nan, np.nan, np.nan, np.nan])
    state = sq.replay({"clear": (clear_t, clear_s), "null": (null_t, null_s)}, design, margins=0.5)
    clear, null = state.decisions["clear"], state.decisions["null"]
    assert clear.label == "positive" and clear.decided_at == 3 and clear.wanted == 3
    assert null.label == "continue" and null.seeds == 3 and null.wanted == 5 and not state.complete
    assert "5 seeds per arm next" in null.reason and "no more seeds" in clear.reason
    nothing = sq.replay({"a": (np.full(7, np.nan), np.full(7, np.nan))}, design)
    assert nothing.decisions["a"].label == "continue" and nothing.decisions["a"].wanted == 3


# ------------------------------------------------------------------------------------------------ settings


def test_until_decided_settings(tmp_path: Path) -> None:
    path = tiny_suite(tmp_path, seeds=5, min_seeds=3, until_decided={"round": 1})
    suite = load_suite(path)
    assert suite.until_decided is not None and suite.until_decided.looks(suite) == (3, 4, 5)
    default = load_suite(tiny_suite(tmp_path, seeds=5, min_seeds=3, until_decided=True))
    assert default.until_decided is not None and default.until_decided.looks(default) == (3, 5)
    with pytest.raises(ConfigError, match=r"until_decided\.first \(2\) is below min_seeds \(3\)"):
        load_suite(tiny_suite(tmp_path, seeds=5, min_seeds=3, until_decided={"first": 2}))
    with pytest.raises(ConfigError, match="the first look needs 3 seeds per arm but the suite has 2"):
        load_suite(tiny_suite(tmp_path, seeds=2, min_seeds=3, until_decided={}))
    with pytest.raises(ConfigError, match=r"unknown key 'until_decided\.max'.*Valid keys here: first, round, spending"):
        load_suite(tiny_suite(tmp_path, seeds=5, until_decided={"max": 3}))
    fixed = load_suite(tiny_suite(tmp_path, seeds=4, min_seeds=3))
    assert with_until_decided(fixed, None) is fixed and with_until_decided(fixed, False) is fixed
    on = with_until_decided(fixed, True)
    assert fixed.until_decided is None and on.until_decided is not None and on.until_decided.looks(on) == (3, 4)
    assert with_until_decided(on, False).until_decided is None
    with pytest.raises(ConfigError, match="--until-decided: .*the first look needs 3 seeds per arm but the suite has 2"):
        with_until_decided(load_suite(tiny_suite(tmp_path, seeds=2, min_seeds=3)), True)


def _two_source_seeds(tmp_path: Path, source_seeds: object, **overrides: object) -> Path:
    path = tiny_suite(tmp_path, seeds=5, **overrides)
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["source"]["train"]["source_seeds"] = source_seeds
    return write_yaml(path, data)


def test_source_seeds_settings(tmp_path: Path) -> None:
    suite = load_suite(_two_source_seeds(tmp_path, 3))
    assert suite.pairs[0].source.train.seed_list == [0, 1, 2] and suite.pairs[1].source.train.seed_list == [0]
    suite = load_suite(_two_source_seeds(tmp_path, [4, 9]))
    assert suite.pairs[0].source.train.seed_list == [4, 9] and suite.pairs[0].source.train.seed == 4
    path = _two_source_seeds(tmp_path, [4, 9])
    data = yaml.safe_load(path.read_text())
    data["pairs"][0]["source"]["train"]["seed"] = 1
    with pytest.raises(ConfigError, match=r"pairs\.0\.source\.train: seed 1 and source_seeds \[4, 9\] disagree"):
        load_suite(write_yaml(path, data))
    with pytest.raises(ConfigError, match="distinct seeds"):
        load_suite(_two_source_seeds(tmp_path, [3, 3]))
    with pytest.raises(ConfigError, match=r"source_seeds must be a count in \[1, 1000\]"):
        load_suite(_two_source_seeds(tmp_path, 0))


def test_suite_json_is_unchanged_without_the_new_settings(tmp_path: Path) -> None:
    from rltransfer.suite import save_suite, stored_suite

    save_suite(load_suite(tiny_suite(tmp_path)), tmp_path)
    stored = json.loads((tmp_path / "suite.json").read_text())
    assert "until_decided" not in stored and all("source_seeds" not in p["source"]["train"] for p in stored["pairs"])
    save_suite(load_suite(_two_source_seeds(tmp_path, [4, 9], until_decided={"round": 1}, min_seeds=2)), tmp_path)
    back = stored_suite(tmp_path)
    assert back.pairs[0].source.train.seed_list == [4, 9] and back.until_decided is not None


# ---------------------------------------------------------------------------------------------- expansion


def test_source_seeds_expansion(tmp_path: Path) -> None:
    plain = {t.key: t for t in expand(load_suite(tiny_suite(tmp_path, seeds=5)), tmp_path / "out")}
    suite = load_suite(_two_source_seeds(tmp_path, 3))
    tasks = {t.key: t for t in expand(suite, tmp_path / "out")}
    sources = [t for t in tasks.values() if t.kind == "source"]
    useful = {tasks[f"runs/useful/finetune/seed{k}"].deps[0] for k in range(5)}
    assert len(sources) == 4 and len(useful) == 3
    by_seed = {tasks[key].spec["seed"]: tasks[key] for key in useful}
    assert sorted(by_seed) == [0, 1, 2]
    assert source_keys(suite, suite.pairs[0]) == [by_seed[k].key for k in range(3)]
    assert by_seed[0].key in plain, "source seed 0 is the pair's single source of before, same key"
    for k in range(5):
        run = tasks[f"runs/useful/finetune/seed{k}"]
        source = by_seed[k % 3]
        assert run.deps[0] == source.key and run.deps[1:] == plain[run.key].deps[1:]
        assert run.spec["transfer"]["source"]["fingerprint"] == source.fingerprint
        assert run.spec["transfer"]["source"]["path"] == str(Path(source.run_dir) / "policy")
        assert (run.fingerprint == plain[run.key].fingerprint) == (k % 3 == 0)
    for key, task in tasks.items():  # scratch runs and the other pair: unchanged
        if task.kind == "scratch" or task.pair == "planted":
            assert plain[key].fingerprint == task.fingerprint and plain[key].deps == task.deps, key
    assert len(tasks) == len(plain) + 2


@pytest.mark.parametrize("one", [1, [0]], ids=["count", "list"])
def test_one_source_seed_is_the_single_source_bit_for_bit(tmp_path: Path, one: object) -> None:
    def view(path: Path) -> list[tuple]:
        return [(t.key, t.fingerprint, t.deps, t.scratch, json.dumps(t.spec, sort_keys=True))
                for t in expand(load_suite(path), tmp_path / "out")]

    assert view(_two_source_seeds(tmp_path, one)) == view(tiny_suite(tmp_path, seeds=5))


def test_until_decided_expansion_compares_with_the_first_look(tmp_path: Path) -> None:
    fixed = {t.key: t for t in expand(load_suite(tiny_suite(tmp_path, seeds=5, min_seeds=3)), tmp_path / "out")}
    seq = {t.key: t for t in expand(load_suite(tiny_suite(tmp_path, seeds=5, min_seeds=3, until_decided=True)),
                                    tmp_path / "out")}
    assert fixed.keys() == seq.keys()
    arm = seq["runs/useful/finetune/seed4"]
    first_look = [f"runs/useful/scratch/seed{k}" for k in range(3)]
    assert list(arm.deps[1:]) == first_look and [Path(r).name for r in arm.spec["detection"]["reference"]] == [
        "seed0", "seed1", "seed2"]
    assert len(arm.scratch) == 5
    for key, task in seq.items():  # sources and scratch runs are the fixed design's
        if task.kind in ("source", "scratch"):
            assert task.fingerprint == fixed[key].fingerprint


# --------------------------------------------------------------------------------------- a real suite, tiny


def _controller_zip(path: Path) -> Path:
    """A PPO policy (16 tanh units) that acts ``push right iff theta + 0.5 theta_dot > 0``: 500 on CartPole."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO

    model = PPO("MlpPolicy", gym.make("CartPole-v1"), policy_kwargs={"net_arch": [16]}, n_steps=32, batch_size=32,
                seed=0, device="cpu")
    with torch.no_grad():
        hidden = model.policy.mlp_extractor.policy_net[0]
        hidden.weight.zero_()
        hidden.bias.zero_()
        hidden.weight[0, 2], hidden.weight[0, 3] = 0.1, 0.05
        head = model.policy.action_net
        head.weight.zero_()
        head.bias.zero_()
        head.weight[1, 0], head.weight[0, 0] = 200.0, -200.0
    model.save(path)
    return path


@pytest.fixture(scope="module")
def decided_suite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two pairs, 5 seeds at most, looks at 3 and 5: a controller transferred with a tiny learning rate
    (clearly better than scratch) and an untrained source (a null)."""
    root = tmp_path_factory.mktemp("seeds")
    (root / "tiny_ppo.yaml").write_text(yaml.safe_dump(TINY_AGENT))
    _controller_zip(root / "controller.zip")
    data = {
        "name": "tiny-seeds", "seeds": 5, "budget": 256, "eval": {"freq": 128, "episodes": 2}, "min_seeds": 3,
        "until_decided": {"first": 3, "round": 2}, "save_freq": None,
        "detection": {"enable": True, "action": "warn", "rule": "per_look", "min_evals": 1},
        "pairs": [
            {"name": "clear", "role": "useful", "agent": "tiny_ppo.yaml", "source": {"policy": "controller.zip"},
             "target": {"env": "cartpole"}, "strategies": [{"name": "lower_lr", "options": {"lr_scale": 0.001}}]},
            {"name": "null", "role": "null", "agent": "tiny_ppo.yaml",
             "source": {"train": {"env": "cartpole", "agent": "tiny_ppo.yaml", "steps": 0, "seed": 7}},
             "target": {"env": "cartpole", "params": {"length": 1.0}}, "strategies": ["finetune"]},
        ],
    }
    path = write_yaml(root / "seeds.yaml", data)
    return path, root / "out"


def test_until_decided_stops_the_clear_pair_and_goes_on_with_the_null(decided_suite: tuple[Path, Path]) -> None:
    path, out = decided_suite
    result = run_suite(path, out, workers=2, progress=False)
    assert not result.failed
    state = result.sequential
    assert state is not None and state.complete
    clear, null = state.decisions[("clear", "lower_lr")], state.decisions[("null", "finetune")]
    assert (clear.label, clear.seeds, clear.decided_at) == ("positive", 3, 3), clear.reason
    assert (null.label, null.seeds, [lk.n for lk in null.looks]) == ("inconclusive", 5, [3, 5]), null.reason
    assert result.verdicts == {("clear", "lower_lr"): "positive", ("null", "finetune"): "inconclusive"}
    made = {str(p.parent.relative_to(out)) for p in out.glob("runs/*/*/seed*/task.json")}
    assert made == {f"runs/clear/{arm}/seed{k}" for arm in ("scratch", "lower_lr") for k in range(3)} | {
        f"runs/null/{arm}/seed{k}" for arm in ("scratch", "finetune") for k in range(5)}
    assert result.executed == 6 + 10 + 1  # and the null pair's source
    record = json.loads((out / sq.SEQUENTIAL_FILE).read_text())
    assert record["runs"] == {"made_or_wanted": 17, "fixed_design": 21,
                              "by_kind": {"source": 1, "scratch": 8, "transfer": 8, "curriculum": 0}}
    assert [c["label"] for c in record["comparisons"]] == ["positive", "inconclusive"]
    assert record["design"]["looks"] == [3, 5] and record["design"]["spending"] == "obrien-fleming"
    session = json.loads((out / "benchmark.json").read_text())["sessions"][-1]
    assert session["runs_total"] == 17 and session["runs_executed"] == 17 and session["runs_fixed_design"] == 21


def test_until_decided_resumes_with_nothing_rerun(decided_suite: tuple[Path, Path]) -> None:
    path, out = decided_suite
    before = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/seed*/eval.npz")}
    again = run_suite(path, out, workers=2, progress=False)
    assert again.executed == 0 and again.skipped == 17 and not again.failed
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/seed*/eval.npz")} == before
    assert again.sequential is not None and again.sequential.labels == {
        ("clear", "lower_lr"): "positive", ("null", "finetune"): "inconclusive"}
    suite = load_suite(path)
    tasks = expand(suite, out)
    state = sequential_state(suite, out, tasks)
    assert state is not None and state.labels == again.sequential.labels
    assert sum(is_done(t) for t in tasks) == 17
