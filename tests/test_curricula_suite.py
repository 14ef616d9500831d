"""Tests for curriculum arms and curriculum-trained sources in benchmark suites (rltransfer/suite.py,
rltransfer/arms.py, rltransfer/benchmark.py): parsing and checking, the run specs, one tiny end-to-end run."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from rltransfer import resources
from rltransfer.arms import curriculum_arm_spec, pair_plan, scratch_spec, source_spec
from rltransfer.benchmark import expand, load_suite, run_suite
from rltransfer.curricula import load_curriculum
from rltransfer.errors import ConfigError

TINY_AGENT = {
    "algo": "ppo",
    "families": {"cartpole": {
        "n_envs": 2, "n_timesteps": 1000,
        "hyperparams": {"n_steps": 32, "batch_size": 32, "n_epochs": 2, "gamma": 0.98, "learning_rate": 0.001},
        "policy_kwargs": {"net_arch": [16]},
    }},
}
#: A cartpole curriculum whose gates open within a tiny budget (the shipped one gates at 40k steps).
QUICK_LENGTH = {
    "name": "quick-length", "family": "cartpole", "description": "0.5 -> 0.75 -> 1.0, 128 steps per stage",
    "stages": [{"params": {"length": 0.5}, "until": {"steps": 128}},
               {"params": {"length": 0.75}, "until": {"steps": 128}},
               {"params": {"length": 1.0}}],
}


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def curriculum_pair(**overrides: object) -> dict:
    """A pair of curriculum arms only: no source, no strategies, the tiny agent named by path."""
    pair = {"name": "longer", "role": "other", "agent": "tiny_ppo.yaml",
            "target": {"env": "cartpole", "params": {"length": 1.0}},
            "curricula": ["cartpole-length", {"name": "quick-length.yaml", "label": "quick"}]}
    pair.update(overrides)
    return pair


def transfer_pair(**overrides: object) -> dict:
    pair = {"name": "useful", "role": "useful", "agent": "tiny_ppo.yaml",
            "source": {"train": {"env": "cartpole", "agent": "tiny_ppo.yaml", "steps": 256}},
            "target": {"env": "cartpole", "params": {"length": 1.0}},
            "strategies": ["finetune"]}
    pair.update(overrides)
    return pair


def suite_file(folder: Path, pairs: list[dict], **overrides: object) -> Path:
    """A tiny suite in ``folder`` (with the tiny agent and the quick curriculum beside it)."""
    write_yaml(folder / "tiny_ppo.yaml", TINY_AGENT)
    write_yaml(folder / "quick-length.yaml", QUICK_LENGTH)
    data = {
        "name": "tiny-curricula", "seeds": 2, "budget": 384, "eval": {"freq": 128, "episodes": 2},
        "min_seeds": 2,
        "detection": {"enable": True, "action": "warn", "rule": "per_look", "min_evals": 1, "patience": 1,
                      "confidence": 0.6},
        "pairs": pairs,
    }
    data.update(overrides)
    return write_yaml(folder / "suite.yaml", data)


# ------------------------------------------------------------------------------------------ parsing


def test_bare_names_and_dicts_give_labelled_arms(tmp_path: Path) -> None:
    pair = transfer_pair(curricula=["cartpole-length", {"name": "cartpole-length", "label": "length-curriculum"},
                                    "quick-length.yaml"])
    suite = load_suite(suite_file(tmp_path, [pair]))
    p = suite.pairs[0]
    assert p.arms == ["finetune", "cartpole-length", "length-curriculum", "quick-length"]
    assert [p.arm_kind(a) for a in ("finetune", "cartpole-length", "scratch")] == ["transfer", "curriculum", "scratch"]
    assert p.arm_strategy("length-curriculum") == "curriculum:cartpole-length"
    assert p.arm_strategy("quick-length") == "curriculum:quick-length"
    assert p.curricula[0].name == "cartpole-length", "a shipped name stays a name"
    assert p.curricula[2].name == str((tmp_path / "quick-length.yaml").resolve()), "a path is relative to the suite"


def test_a_curriculum_only_pair_needs_no_source(tmp_path: Path) -> None:
    suite = load_suite(suite_file(tmp_path, [curriculum_pair()]))
    assert suite.pairs[0].source is None and suite.pairs[0].strategies == []
    tasks = expand(suite, tmp_path / "out")
    assert [t.kind for t in tasks] == ["scratch"] * 2 + ["curriculum"] * 4
    assert {t.key for t in tasks if t.kind == "curriculum"} == {
        f"runs/longer/{arm}/seed{s}" for arm in ("cartpole-length", "quick") for s in (0, 1)}
    assert all(t.spec["agent"]["policy_kwargs"]["net_arch"] == [16] for t in tasks), "the pair's agent"


def test_a_source_with_curricula_only_is_not_trained(tmp_path: Path) -> None:
    pair = transfer_pair(strategies=[], curricula=["cartpole-length"])
    tasks = expand(load_suite(suite_file(tmp_path, [pair])), tmp_path / "out")
    assert not [t for t in tasks if t.kind == "source"], "no transfer arm uses the source"
    assert [t.kind for t in tasks] == ["scratch"] * 2 + ["curriculum"] * 2


@pytest.mark.parametrize("pair,message", [
    (curriculum_pair(curricula=[]), r"pairs\.0.*at least one arm.*'strategies' and/or 'curricula'"),
    (curriculum_pair(strategies=["finetune"]), r"pairs\.0.*'strategies' needs a 'source'"),
    ({k: v for k, v in curriculum_pair().items() if k != "agent"}, r"pairs\.0.*without a source needs 'agent'"),
    (transfer_pair(curricula=[{"name": "cartpole-length", "label": "finetune"}]),
     r"pairs\.0.*arms \['finetune'\] appear twice among strategies and curricula"),
    (curriculum_pair(curricula=["cartpole-length", "cartpole-length"]), r"'cartpole-length'.*appear twice"),
    (curriculum_pair(curricula=[{"name": "cartpole-length", "label": "scratch"}]), r"'scratch' is the from-scratch"),
    (curriculum_pair(curricula=[{"name": "cartpole-length", "label": "a/b"}]), r"pairs\.0\.curricula\.0.*label"),
    (curriculum_pair(curricula=[{"name": "cartpole-length", "lable": "x"}]), r"pairs\.0\.curricula\.0\.lable"),
])
def test_bad_pairs_name_the_file_and_key(tmp_path: Path, pair: dict, message: str) -> None:
    path = suite_file(tmp_path, [pair])
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_a_curriculum_of_another_family_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = suite_file(tmp_path, [curriculum_pair(curricula=["cartpole-length", "hopper-heavier-torso"])])
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: pairs.0.curricula.1 (pair longer): ")
    assert "'hopper-heavier-torso'" in msg and "'hopper'" in msg and "'cartpole'" in msg


def test_an_unknown_curriculum_gets_did_you_mean(tmp_path: Path) -> None:
    path = suite_file(tmp_path, [curriculum_pair(curricula=["cartpole-lenght"])])
    with pytest.raises(ConfigError) as info:
        load_suite(path)
    msg = str(info.value)
    assert str(path) in msg and "pairs.0.curricula.0" in msg and "Did you mean: 'cartpole-length'" in msg
    path = suite_file(tmp_path, [curriculum_pair(curricula=["missing.yaml"])])
    with pytest.raises(ConfigError, match=r"pairs\.0\.curricula\.0.*no such file"):
        load_suite(path)


@pytest.mark.parametrize("value,randomize,message", [
    ("cartpole-lenght", None, r"pairs\.0 \(useful\)\.source\.train\.curriculum: .*Did you mean: 'cartpole-length'"),
    ("hopper-heavier-torso", None, r"pairs\.0 \(useful\)\.source\.train\.curriculum: .*is for env family 'hopper'"),
    ("quick-length.yaml", "dr", r"pairs\.0 \(useful\)\.source\.train\.curriculum: .*length.*preset 'dr' draws"),
])
def test_a_source_curriculum_is_checked(tmp_path: Path, value: str, randomize: str | None, message: str) -> None:
    pair = transfer_pair()
    pair["source"]["train"]["curriculum"] = value
    if randomize is not None:
        pair["source"]["train"]["randomize"] = randomize
    path = suite_file(tmp_path, [pair])
    with pytest.raises(ConfigError, match=message) as info:
        load_suite(path)
    assert str(path) in str(info.value)


def test_a_curriculum_outside_the_target_familys_bounds_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "envs" / "cartpole.yaml").read_text())
    data["params"]["length"]["high"] = 0.8  # the same family, narrower: the quick curriculum's 1.0 is outside
    data["params"]["length"]["nominal"] = 0.5
    write_yaml(tmp_path / "short-cartpole.yaml", data)
    pair = curriculum_pair(target={"env": "short-cartpole.yaml"}, curricula=[{"name": "quick-length.yaml"}])
    with pytest.raises(ConfigError, match=r"pairs\.0\.curricula\.0 \(pair longer\): .*stages\.2\.params"):
        load_suite(suite_file(tmp_path, [pair]))


def test_suite_json_keeps_transfer_suites_as_they_were(tmp_path: Path) -> None:
    """A suite without curricula is stored without the curriculum keys (older versions read it); one with
    curricula round-trips."""
    from rltransfer.suite import save_suite, stored_suite

    plain = load_suite(suite_file(tmp_path, [transfer_pair()]))
    save_suite(plain, tmp_path)
    stored = json.loads((tmp_path / "suite.json").read_text())
    assert "curricula" not in stored["pairs"][0] and "curriculum" not in stored["pairs"][0]["source"]["train"]
    assert stored_suite(tmp_path).model_dump() == plain.model_dump()
    mixed = load_suite(suite_file(tmp_path, [transfer_pair(curricula=["cartpole-length"]), curriculum_pair()]))
    save_suite(mixed, tmp_path)
    back = stored_suite(tmp_path)
    assert back.model_dump() == mixed.model_dump() and back.pairs[1].source is None
    assert back.pairs[1].arms == ["cartpole-length", "quick"]


# ------------------------------------------------------------------------------------------ run specs


def _without(spec: dict, *keys: str) -> dict:
    return {k: v for k, v in spec.items() if k not in keys}


def test_a_curriculum_arm_is_the_scratch_spec_plus_the_curriculum(tmp_path: Path) -> None:
    suite = load_suite(suite_file(tmp_path, [transfer_pair(curricula=["cartpole-length"])]))
    tasks = {t.key: t for t in expand(suite, tmp_path / "out")}
    for seed in (0, 1):
        scratch = tasks[f"runs/useful/scratch/seed{seed}"]
        arm = tasks[f"runs/useful/cartpole-length/seed{seed}"]
        assert arm.kind == "curriculum" and arm.pair == "useful" and arm.arm == "cartpole-length"
        assert arm.spec["curriculum"] == load_curriculum("cartpole-length").model_dump(mode="json")
        assert scratch.spec["curriculum"] is None and scratch.spec["detection"] is None
        keys = ("curriculum", "detection", "label")
        assert _without(arm.spec, *keys) == _without(scratch.spec, *keys), (
            "same agent (the source's architecture), env, seed, budget and evaluation")
        assert arm.spec["seed"] == seed and arm.spec["steps"] == 384 and arm.spec["eval"] == scratch.spec["eval"]
        assert arm.spec["transfer"] is None, "no transfer: trained from its own initialization"
        assert arm.fingerprint != scratch.fingerprint
        det = arm.spec["detection"]
        assert det["reference"] == [str(tmp_path / "out" / f"runs/useful/scratch/seed{s}") for s in (0, 1)]
        assert set(arm.deps) == set(arm.scratch) == {"runs/useful/scratch/seed0", "runs/useful/scratch/seed1"}
    # the arm spec builder itself, without detection
    plan = pair_plan(suite, suite.pairs[0])
    spec = curriculum_arm_spec(plan, suite.pairs[0].curricula[0], 1)
    assert spec.detection is None and spec.label == "cartpole-length"
    assert spec.model_copy(update={"curriculum": None}).fingerprint() == scratch_spec(plan, 1).fingerprint()


def test_curriculum_arms_follow_the_curriculum_content(tmp_path: Path) -> None:
    path = suite_file(tmp_path, [curriculum_pair()])
    before = {t.key: t.fingerprint for t in expand(load_suite(path), tmp_path / "out")}
    changed = json.loads(json.dumps(QUICK_LENGTH))
    changed["stages"][1]["params"]["length"] = 0.8
    write_yaml(tmp_path / "quick-length.yaml", changed)  # the same file name, the suite unchanged
    after = {t.key: t.fingerprint for t in expand(load_suite(path), tmp_path / "out")}
    assert before.keys() == after.keys()
    changed_keys = {key for key, fp in before.items() if after[key] != fp}
    assert changed_keys == {key for key in before if "/quick/" in key}, "exactly the runs of that curriculum"


def test_a_source_trained_with_a_curriculum(tmp_path: Path) -> None:
    plain, with_curriculum = transfer_pair(), transfer_pair(name="curriculum-source")
    with_curriculum["source"] = json.loads(json.dumps(plain["source"]))
    with_curriculum["source"]["train"]["curriculum"] = "quick-length.yaml"
    suite = load_suite(suite_file(tmp_path, [plain, with_curriculum]))
    train = suite.pairs[1].source.train
    assert train.curriculum == str((tmp_path / "quick-length.yaml").resolve())
    spec = source_spec(train)
    assert spec.curriculum == load_curriculum(tmp_path / "quick-length.yaml").model_dump(mode="json")
    assert source_spec(suite.pairs[0].source.train).curriculum is None
    sources = [t for t in expand(suite, tmp_path / "out") if t.kind == "source"]
    assert len(sources) == 2 and sources[0].fingerprint != sources[1].fingerprint
    assert sorted(bool(t.spec["curriculum"]) for t in sources) == [False, True]
    # the target agent does not depend on the source's curriculum: both pairs share one scratch arm
    tasks = expand(suite, tmp_path / "out")
    assert not [t for t in tasks if t.key.startswith("runs/curriculum-source/scratch")]
    # and the fingerprint follows the curriculum's content
    changed = json.loads(json.dumps(QUICK_LENGTH))
    changed["stages"][0]["until"]["steps"] = 64
    write_yaml(tmp_path / "quick-length.yaml", changed)
    assert source_spec(train).fingerprint() != spec.fingerprint()


def test_the_shipped_curricula_suite(tmp_path: Path) -> None:
    if "mountaincar-power" not in resources.names("curricula"):
        pytest.skip("curricula/mountaincar-power.yaml is not written yet")
    suite = load_suite("curricula")
    assert len(suite.seed_list) == 5 and suite.threshold == 90 and suite.eval.episodes == 5
    pair = suite.pairs[0]
    assert pair.source is None and pair.target.env == "mountaincar" and pair.target.params == {}
    assert [c.name for c in pair.curricula] == ["mountaincar-power"]
    tasks = expand(suite, tmp_path)
    assert {t.kind for t in tasks} == {"scratch", "curriculum"}
    assert {t.spec["agent"]["algo"] for t in tasks} == {"sac"}
    assert all(t.spec["env"]["params"]["power"] == 0.0015 for t in tasks), "evaluated on the nominal engine"


# ------------------------------------------------------------------------------------------ end to end


def test_a_tiny_curriculum_benchmark_reports_its_curriculum_arms(tmp_path: Path) -> None:
    path = suite_file(tmp_path, [curriculum_pair()])
    result = run_suite(path, tmp_path / "out", workers=1, progress=False)
    assert not result.failed, result.failed
    assert result.executed == 6
    out = tmp_path / "out"
    assert set(result.verdicts) == {("longer", "cartpole-length"), ("longer", "quick")}
    assert set(result.verdicts.values()) <= {"positive", "negative", "equivalent", "inconclusive"}
    run = out / "runs" / "longer" / "quick" / "seed0"
    assert json.loads((run / "task.json").read_text())["kind"] == "curriculum"
    assert (run / "detection.json").is_file(), "online detection against the scratch runs"
    assert yaml.safe_load((run / "config.yaml").read_text())["spec"]["curriculum"]["name"] == "quick-length"

    report = json.loads((out / "report.json").read_text())
    by_arm = {r["arm"]: r for r in report["results"]}
    assert by_arm["quick"]["kind"] == "curriculum" and by_arm["quick"]["strategy"] == "curriculum:quick-length"
    assert by_arm["cartpole-length"]["strategy"] == "curriculum:cartpole-length"
    assert all(r["label"] in ("positive", "negative", "equivalent", "inconclusive") for r in report["results"])
    assert all(r["profile"] in ("better", "worse", "jumpstart only", "crossover", "slow start", "equivalent",
                                "inconclusive") for r in report["results"])
    assert by_arm["quick"]["comparisons"]["auc"]["n_transfer"] == 2 == by_arm["quick"]["comparisons"]["auc"]["n_scratch"]
    md = (out / "report.md").read_text()
    assert "| pair | role | arm | runs |" in md
    assert "| longer | other | cartpole-length (curriculum) | 2 vs 2 |" in md
    assert "| longer | other | quick (curriculum quick-length) | 2 vs 2 |" in md
    assert "longer / quick: " in md and "(curriculum arm)" in md and "A curriculum arm trains" in md
    with open(out / "runs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted({(r["arm"], r["strategy"]) for r in rows}) == [
        ("cartpole-length", "curriculum:cartpole-length"), ("quick", "curriculum:quick-length"),
        ("scratch", "scratch")]
    assert (out / "learning_curves.png").stat().st_size > 0


def test_the_detectors_fallback_on_a_curriculum_arm_trains_without_it(tmp_path: Path) -> None:
    detection = {"action": "fallback", "rule": "per_look", "min_evals": 1, "patience": 1, "confidence": 0.6}
    path = suite_file(tmp_path, [curriculum_pair(curricula=["quick-length.yaml"])], detection=detection)
    result = run_suite(path, tmp_path / "out", workers=1, progress=False)
    assert not result.failed and result.analysis is not None
    fell_back = [r for r in result.analysis.runs if r.arm == "quick-length" and r.alarm_step is not None]
    if not fell_back:
        pytest.skip("no alarm in this tiny run (the detector found the curriculum arm no worse than scratch)")
    for record in fell_back:
        run = Path(record.run_dir)
        det = json.loads((run / "detection.json").read_text())
        assert det["fallback"]["steps"] == 384 - det["alarm_step"]
        spec = yaml.safe_load((run / "fallback" / "config.yaml").read_text())["spec"]
        assert spec["curriculum"] is None and spec["transfer"] is None, "the fallback is plain scratch"
        assert yaml.safe_load((run / "config.yaml").read_text())["spec"]["curriculum"]["name"] == "quick-length"
