"""The strategy registry: every strategy is one class (options model + hooks), and the command line offers
every option of every registered strategy as a typed, described flag."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from tiny import tiny

from rltransfer.cli import build_parser, main, strategy_options_of
from rltransfer.errors import ConfigError
from rltransfer.strategies import (
    STRATEGIES,
    Strategy,
    StrategySpec,
    parse_strategy,
    register_strategy,
    strategy_options,
)


def _transfer_parser() -> Any:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return sub.choices["transfer"]


def _options(argv: list[str]) -> dict[str, Any]:
    args = build_parser().parse_args(["transfer", "--from", "src", "--env", "cartpole", *argv])
    return strategy_options_of(args)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_is_a_documented_options_model(name: str) -> None:
    cls = STRATEGIES[name]
    assert issubclass(cls, Strategy) and cls.name == name and cls.summary
    assert cls.model_config["extra"] == "forbid"
    assert all(f.description for f in cls.model_fields.values())
    spec = parse_strategy(name)
    assert isinstance(spec, StrategySpec) and spec.name == name
    assert spec.to_dict()["name"] == name


def test_legacy_flags_map_to_the_same_options() -> None:
    assert _options([]) == {}
    assert _options(["--freeze-layers", "2", "--freeze-pattern", "a.*", "--freeze-pattern", "b.*"]) == {
        "freeze_layers": 2, "freeze_patterns": ["a.*", "b.*"]}
    assert _options(["--heads", "policy, value"]) == {"heads": ["policy", "value"]}
    assert _options(["--heads", ""]) == {}
    assert _options(["--l2sp-alpha", "0.5", "--lr-scale", "0.2", "--kickstart-weight", "2",
                     "--kickstart-end-fraction", "0.25", "--kickstart-epochs", "3",
                     "--kickstart-batch-size", "64"]) == {
        "l2sp_alpha": 0.5, "lr_scale": 0.2, "kickstart_weight": 2.0, "kickstart_end_fraction": 0.25,
        "kickstart_epochs": 3, "kickstart_batch_size": 64}


def test_help_names_the_strategy_the_bounds_and_the_default() -> None:
    by_name = {o.name: o for o in strategy_options()}
    assert set(by_name) == {k for c in STRATEGIES.values() for k in c.model_fields}
    assert by_name["lr_scale"].help.startswith("lower_lr: ") and "> 0, <= 1" in by_name["lr_scale"].help
    assert by_name["lr_scale"].help.endswith("(default: 0.1)")
    assert by_name["heads"].help.startswith("any strategy: ")
    assert "reinit_heads: policy,value,critic,q" in by_name["heads"].help
    text = _transfer_parser().format_help()
    assert "--kickstart-batch-size" in text and "--freeze-pattern" in text


def test_options_of_other_strategies_and_unknown_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"strategy 'finetune' does not use option\(s\) \['lr_scale'\]; it uses none"):
        parse_strategy("finetune", {"lr_scale": 0.5})
    with pytest.raises(ConfigError, match="unknown key 'freeze_layer'.*Valid keys here: heads, freeze_layers"):
        parse_strategy("freeze", {"freeze_layer": 1})
    assert parse_strategy("kickstart", {"heads": ["policy"]}).heads == ["policy"]  # shared by every strategy


def test_registration_rejects_bad_classes() -> None:
    class Nameless(Strategy):
        pass

    class Undocumented(Strategy):
        name = "undocumented"
        x: int = 1

    with pytest.raises(ValueError, match="needs a name"):
        register_strategy(Nameless)
    with pytest.raises(TypeError, match=r"\['x'\] need a Field\(description"):
        register_strategy(Undocumented)
    with pytest.raises(ValueError, match="already registered"):
        register_strategy(type("Other", (Strategy,), {"name": "freeze", "__module__": __name__}))
    assert "undocumented" not in STRATEGIES


class Halve(Strategy):
    """A toy strategy, the whole of it: scale the learning rate of transferred tensors, count rollouts."""

    name = "halve"
    summary = "copy, then train transferred tensors at a fraction of the learning rate"
    halve_factor: float = Field(default=0.5, gt=0, le=1, description="learning-rate factor")

    def mark(self, tensor, role) -> None:
        tensor.lr_scale = self.halve_factor


def test_a_new_strategy_is_one_class(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(STRATEGIES, "halve", Halve)
    help_text = " ".join(_transfer_parser().format_help().split())
    assert "--halve-factor HALVE_FACTOR halve: learning-rate factor (> 0, <= 1) (default: 0.5)" in help_text
    assert _options(["--strategy", "halve", "--halve-factor", "0.25"]) == {"halve_factor": 0.25}
    with pytest.raises(ConfigError, match=r"strategy 'finetune' does not use option\(s\) \['halve_factor'\]"):
        parse_strategy("finetune", {"halve_factor": 0.5})

    from rltransfer.pipeline import train

    src = train("cartpole", tiny("ppo", "cartpole"), steps=64, seed=0, out=tmp_path, name="src", eval_freq=0,
                eval_episodes=1)
    code = main(["transfer", "--from", str(src.run_dir), "--env", "cartpole", "--strategy", "halve",
                 "--halve-factor", "0.25", "--steps", "64", "--out", str(tmp_path), "--name", "halve",
                 "--eval-freq", "0", "--eval-episodes", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    plan = json.loads((tmp_path / "halve" / "transfer_plan.json").read_text())
    assert plan["strategy"] == {"name": "halve", "heads": [], "halve_factor": 0.25}
    assert {t["lr_scale"] for t in plan["tensors"]} == {0.25}
    code = main(["transfer", "--from", str(src.run_dir), "--env", "cartpole", "--strategy", "halve",
                 "--halve-factor", "2", "--out", str(tmp_path)])
    assert code == 2 and "halve_factor" in capsys.readouterr().err
