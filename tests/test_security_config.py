"""Attacks on the YAML configs (env families, agents, suites, curricula): bombs, deep nesting, tags,
duplicate keys, binary and re-encoded files, out-of-range numbers, and Gymnasium ids that import code.

Every case is refused with a ``ConfigError`` (or loads, for the ``valid`` controls) in bounded time and
memory, without a traceback-type error and without running the payload.
"""

from __future__ import annotations

import copy
import math
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from attacks import AttackCase, case_id, payload_source, run_case, sentinel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rltransfer import resources
from rltransfer.agents import load_agent
from rltransfer.benchmark import load_suite
from rltransfer.config import load_family, parse_set, read_yaml
from rltransfer.curricula import load_curriculum
from rltransfer.errors import ConfigError, ResourceLimitError, RLTransferError
from rltransfer.limits import MAX_LAYER_WIDTH

# ------------------------------------------------------------------------------------------- helpers

LOADERS: dict[str, Callable[[Path], Any]] = {
    "family": load_family,
    "agent": lambda p: load_agent(p, "cartpole"),
    "suite": load_suite,
    "curriculum": load_curriculum,
}
#: A shipped file per loader, the base of the mutations.
BASES = {
    "family": ("envs", "cartpole"),
    "agent": ("agents", "ppo"),
    "suite": ("benchmarks", "quick"),
    "curriculum": ("curricula", "cartpole-length"),
}


def shipped(kind: str, name: str) -> Path:
    return resources.find(kind, name)


def shipped_data(loader: str) -> Any:
    return yaml.safe_load(shipped(*BASES[loader]).read_text())


def text_file(name: str, text: str | Callable[[Path], str]) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_text(text(folder) if callable(text) else text, encoding="utf-8")
        return path

    return build


def bytes_file(name: str, data: bytes) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data)
        return path

    return build


def set_path(data: Any, path: tuple[Any, ...], value: Any) -> Any:
    out = copy.deepcopy(data)
    node = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


# ---------------------------------------------------------------------------------------------- cases

CASES: list[AttackCase] = []


def add(kind: str, name: str, build: Callable[[Path], Path], load: Callable[[Path], Any],
        expect: type[BaseException] | None = ConfigError) -> None:
    CASES.append(AttackCase(kind, name, build, load, expect))


# -- valid controls: every shipped YAML loads

for _fam in resources.names("envs"):
    add("valid", f"family-{_fam}", lambda f, n=_fam: shipped("envs", n), load_family, None)
for _agent in resources.names("agents"):
    for _fam in yaml.safe_load(shipped("agents", _agent).read_text())["families"]:
        add("valid", f"agent-{_agent}-{_fam}", lambda f, n=_agent: shipped("agents", n),
            lambda p, fam=_fam: load_agent(p, fam), None)
for _suite in resources.names("benchmarks"):
    add("valid", f"suite-{_suite}", lambda f, n=_suite: shipped("benchmarks", n), load_suite, None)
for _cur in resources.names("curricula"):
    add("valid", f"curriculum-{_cur}", lambda f, n=_cur: shipped("curricula", n), load_curriculum, None)
add("valid", "agent-utf8-bom", lambda f: bytes_file("a.yaml", b"\xef\xbb\xbf" + shipped("agents", "ppo").read_bytes())(f),
    LOADERS["agent"], None)
add("valid", "family-allow-import-plain-id",
    text_file("fam.yaml", shipped("envs", "cartpole").read_text() + "allow_import: true\n"), load_family, None)


# -- hostile: alias bombs

def laughs(depth: int, width: int = 10, mapping: bool = False) -> str:
    lines = ["algo: ppo"]
    lines.append(f"x0: &x0 [{', '.join(['lol'] * width)}]")
    for i in range(1, depth + 1):
        refs = ", ".join(f"k{j}: *x{i - 1}" if mapping else f"*x{i - 1}" for j in range(width))
        lines.append(f"x{i}: &x{i} {{{refs}}}" if mapping else f"x{i}: &x{i} [{refs}]")
    lines.append(f"families: {{cartpole: {{wrappers: *x{depth}}}}}")
    return "\n".join(lines) + "\n"


for _depth in (3, 6, 9, 12):
    add("hostile", f"billion-laughs-list-{_depth}", text_file("bomb.yaml", laughs(_depth)), LOADERS["agent"])
    add("hostile", f"billion-laughs-map-{_depth}", text_file("bomb.yaml", laughs(_depth, mapping=True)),
        LOADERS["agent"])
add("hostile", "billion-laughs-in-family-make-kwargs",
    text_file("fam.yaml", shipped("envs", "cartpole").read_text().replace("name: cartpole", "x0: &x0 [a, a, a, a, a, a, a, a]\n"
              + "\n".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 8)}]" for i in range(1, 10))
              + "\nname: cartpole\nmake_kwargs: {a: *x9}")), load_family, ResourceLimitError)
add("hostile", "billion-laughs-in-suite",
    text_file("s.yaml", "x0: &x0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n"
              + "\n".join(f"x{i}: &x{i} [{', '.join([f'*x{i - 1}'] * 10)}]" for i in range(1, 9))
              + "\n" + shipped("benchmarks", "quick").read_text().replace("seeds: 8", "seeds: *x8")),
    load_suite, ResourceLimitError)
add("hostile", "recursive-alias", text_file("r.yaml", "algo: ppo\nfamilies: &a {cartpole: {wrappers: [*a]}}\n"),
    LOADERS["agent"])
add("hostile", "alias-chain-depth-200",
    text_file("c.yaml", "x0: &x0 [a]\n" + "".join(f"x{i}: &x{i} [*x{i - 1}]\n" for i in range(1, 200)) + "algo: ppo\n"),
    LOADERS["agent"], ResourceLimitError)
add("hostile", "merge-key-bomb",
    text_file("m.yaml", "x0: &x0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}\n"
              + "".join(f"x{i}: &x{i} {{<<: [{', '.join([f'*x{i - 1}'] * 8)}]}}\n" for i in range(1, 10))
              + "algo: ppo\n"), LOADERS["agent"])


# -- hostile: deep nesting (flow and block style)

for _n in (100, 1000, 10_000, 100_000):
    add("hostile", f"deep-flow-list-{_n}", text_file("d.yaml", "algo: ppo\ndescription: " + "[" * _n + "]" * _n + "\n"),
        LOADERS["agent"])
    add("hostile", f"deep-flow-map-{_n}", text_file("d.yaml", "name: x\nmake_kwargs: " + "{a: " * _n + "1" + "}" * _n + "\n"),
        load_family)
for _n in (100, 1000, 10_000):
    add("hostile", f"deep-block-list-{_n}",
        text_file("d.yaml", "algo: ppo\ndescription:\n" + "".join(" " * (i + 1) + "-\n" for i in range(_n))),
        LOADERS["agent"])
    add("hostile", f"deep-block-map-{_n}",
        text_file("d.yaml", "stages:\n" + "".join(" " * (i + 1) + "a:\n" for i in range(_n))), load_curriculum)
add("hostile", "deep-compact-block-list-100000",
    text_file("d.yaml", "algo: ppo\ndescription: " + "- " * 100_000 + "x\n"), LOADERS["agent"])


# -- hostile: tags that ask to run code

_TAGS = {
    "apply-exec": lambda f: f"algo: !!python/object/apply:builtins.exec [{payload_source(f)!r}]\n",
    "apply-os-system": lambda f: (
        f"algo: !!python/object/apply:os.system [{(sys.executable + ' -c ' + repr(payload_source(f)))!r}]\n"),
    "apply-eval-nested": lambda f: (
        f"algo: ppo\nfamilies:\n  cartpole:\n    hyperparams:\n      learning_rate: "
        f"!!python/object/apply:builtins.eval [{payload_source(f)!r}]\n"),
    "object-new": lambda f: "algo: !!python/object/new:os.system [ls]\n",
    "python-name": lambda f: "algo: !!python/name:os.system\n",
    "python-module": lambda f: "algo: !!python/module:os\n",
    "local-tag": lambda f: "algo: !shell 'touch x'\n",
    "verbatim-tag": lambda f: "algo: !<tag:yaml.org,2002:python/object/apply:os.system> [ls]\n",
    "tag-directive": lambda f: "%TAG !p! tag:yaml.org,2002:python/\n---\nalgo: !p!object/apply:builtins.exec ['1']\n",
}
for _name, _text in _TAGS.items():
    add("hostile", f"tag-{_name}", text_file("evil.yaml", _text), LOADERS["agent"])
    add("hostile", f"tag-{_name}-family", text_file("evil.yaml", lambda f, t=_text: t(f).replace("algo:", "name:")),
        load_family)


# -- hostile: duplicate keys

add("hostile", "duplicate-top-level", text_file("dup.yaml", "algo: ppo\nalgo: sac\nfamilies: {cartpole: {}}\n"),
    LOADERS["agent"])
add("hostile", "duplicate-nested",
    text_file("dup.yaml", "algo: ppo\nfamilies:\n  cartpole:\n    n_envs: 1\n    n_envs: 256\n"), LOADERS["agent"])
add("hostile", "duplicate-flow-same-line",
    text_file("dup.yaml", "algo: ppo\nfamilies: {cartpole: {hyperparams: {gamma: 0.9, gamma: 0.99}}}\n"),
    LOADERS["agent"])
add("hostile", "duplicate-family-param",
    text_file("dup.yaml", shipped("envs", "cartpole").read_text()
              + "  length:    {nominal: 1.0, low: 0.05, high: 5.0}\n"), load_family)
add("hostile", "duplicate-suite-budget",
    text_file("dup.yaml", shipped("benchmarks", "quick").read_text() + "budget: 1000000000\n"), load_suite)
add("hostile", "duplicate-int-and-float-key", text_file("dup.yaml", "algo: ppo\nfamilies: {1: {}, 1.0: {}}\n"),
    LOADERS["agent"])


# -- hostile: Gymnasium ids that import a module

def _import_payload(folder: Path) -> Path:
    pkg = folder / "somemodule"
    pkg.mkdir(exist_ok=True)
    (pkg / "__init__.py").write_text(payload_source(folder) + "\n")
    (pkg / "payload.py").write_text(payload_source(folder) + "\n")
    path = folder / "fam.yaml"
    path.write_text(shipped("envs", "cartpole").read_text().replace(
        "gym_id: CartPole-v1", 'gym_id: "somemodule.payload:CartPole-v1"'))
    return path


def _load_and_make_on_path(path: Path) -> Any:
    """Load the family with its folder on sys.path, then build the env (what training would do next)."""
    sys.path.insert(0, str(path.parent))
    try:
        family = load_family(path)
        from rltransfer.environments import make_env

        return make_env(family)
    finally:
        sys.path.remove(str(path.parent))
        for mod in ("somemodule.payload", "somemodule"):
            sys.modules.pop(mod, None)


add("hostile", "gym-id-imports-module", _import_payload, _load_and_make_on_path)
for _name, _gym_id in {
    "gym-id-import-top-module": "os:CartPole-v1",
    "gym-id-path": "../../etc/passwd",
    "gym-id-space": "Cart Pole-v1",
    "gym-id-two-colons": "a:b:CartPole-v1",
    "gym-id-huge": "C" * 100_000,
    "gym-id-newline": "CartPole-v1\\nx",
    "gym-id-empty": "",
}.items():
    add("hostile", _name, text_file("fam.yaml", shipped("envs", "cartpole").read_text().replace(
        "gym_id: CartPole-v1", f'gym_id: "{_gym_id}"')), load_family)
add("hostile", "allow-import-as-string",
    text_file("fam.yaml", shipped("envs", "cartpole").read_text().replace("gym_id: CartPole-v1", 'gym_id: "os:X-v0"')
              + "allow_import: 'yes'\n"), load_family)
for _name, _adapter in {"adapter-dotted": "os.system", "adapter-path": "../cartpole", "adapter-huge": "a" * 10_000}.items():
    add("hostile", _name, text_file("fam.yaml", shipped("envs", "cartpole").read_text().replace(
        "adapter: cartpole", f"adapter: {_adapter}")), load_family)


# -- hostile: sizes and literals

add("hostile", "file-over-4MiB", text_file("big.yaml", "algo: ppo\ndescription: " + "a" * (5 * 2**20) + "\n"),
    LOADERS["agent"], ResourceLimitError)
add("hostile", "two-million-values", text_file("big.yaml", "algo: ppo\ndescription: [" + "1," * 1_500_000 + "1]\n"),
    LOADERS["agent"], ResourceLimitError)
add("hostile", "huge-int-literal", text_file("int.yaml", "algo: ppo\nfamilies: {cartpole: {n_envs: " + "9" * 10_000 + "}}\n"),
    LOADERS["agent"])
add("hostile", "huge-key", text_file("key.yaml", "algo: ppo\n" + "k" * 1_000_000 + ": 1\n"), LOADERS["agent"])
add("hostile", "many-unknown-keys",
    text_file("keys.yaml", "algo: ppo\nfamilies: {cartpole: {hyperparams: {"
              + ", ".join(f"k{i}: {i}" for i in range(50_000)) + "}}}\n"), LOADERS["agent"])


# -- damaged: binary, re-encoded, truncated

_rng = random.Random(0)
for _i in range(4):
    for _loader in LOADERS:
        _junk = bytes(_rng.randrange(256) for _ in range(_rng.choice((16, 512, 4096))))
        add("damaged", f"binary-{_loader}-{_i}", bytes_file("junk.yaml", _junk), LOADERS[_loader])
for _loader, (_kind, _name) in BASES.items():
    _text = shipped(_kind, _name).read_text()
    add("damaged", f"utf16-le-bom-{_loader}", bytes_file("u.yaml", _text.encode("utf-16")), LOADERS[_loader])
    add("damaged", f"utf16-be-{_loader}", bytes_file("u.yaml", _text.encode("utf-16-be")), LOADERS[_loader])
    add("damaged", f"utf32-{_loader}", bytes_file("u.yaml", _text.encode("utf-32")), LOADERS[_loader])
    _cut = _text.index("{") + 5
    add("damaged", f"truncated-in-flow-{_loader}", text_file("t.yaml", _text[:_cut]), LOADERS[_loader])
    add("damaged", f"nul-bytes-{_loader}", bytes_file("n.yaml", _text.encode()[:40] + b"\x00" * 8 + _text.encode()[40:]),
        LOADERS[_loader])
    add("damaged", f"empty-{_loader}", text_file("e.yaml", ""), LOADERS[_loader])
    add("damaged", f"top-level-list-{_loader}", text_file("l.yaml", "- 1\n- 2\n"), LOADERS[_loader])
add("damaged", "latin1-family", bytes_file("l.yaml", shipped("envs", "cartpole").read_text().replace(
    "Classic", "Classic caf\u00e9").encode("latin-1")), load_family)
add("damaged", "gzip-agent", bytes_file("g.yaml", b"\x1f\x8b\x08\x00" + bytes(range(200))), LOADERS["agent"])
add("damaged", "bad-indentation-agent", text_file("i.yaml", "algo: ppo\n families:\n cartpole: {}\n"), LOADERS["agent"])


# -- config: one mutated value each

_AGENT_MUTATIONS: list[tuple[str, str, tuple[Any, ...], Any]] = []
_HP = ("hyperparams",)


def mut(agent: str, family: str, path: tuple[Any, ...], *values: Any) -> None:
    for value in values:
        _AGENT_MUTATIONS.append((agent, family, path, value))


mut("ppo", "cartpole", ("n_timesteps",), 2**70, 0, -1, 1e12, float("nan"), "1e9", True)
mut("ppo", "cartpole", ("n_envs",), 10**6, 0, 257, 1.5, True)
mut("ppo", "cartpole", _HP + ("n_steps",), 0, 10**9)
mut("ppo", "cartpole", _HP + ("batch_size",), 0, 10**9)
mut("ppo", "cartpole", _HP + ("n_epochs",), 0, 10**9)
mut("ppo", "cartpole", _HP + ("learning_rate",), -1, 0, 2, float("nan"), float("inf"),
    {"schedule": "linear", "start": -1, "end": 0}, {"schedule": "linear", "start": 0.001, "end": 2},
    {"schedule": "linear", "start": float("nan")}, "__import__('os')", "lin_0.001")
mut("ppo", "cartpole", _HP + ("clip_range",), -1, 0, 5, {"schedule": "linear", "start": 0.0})
mut("ppo", "cartpole", _HP + ("ent_coef",), 1e30, -1, float("inf"), "auto_0.1", "exec")
mut("ppo", "cartpole", _HP + ("vf_coef",), -1, 1e30)
mut("ppo", "cartpole", _HP + ("max_grad_norm",), 0, -1, float("inf"))
mut("ppo", "cartpole", _HP + ("gamma",), 1.5, -0.1)
mut("ppo", "cartpole", _HP + ("gae_lambda",), 2)
mut("ppo", "cartpole", _HP + ("target_kl",), 0, -1)
mut("ppo", "cartpole", _HP + ("sde_sample_freq",), -5)
mut("ppo", "cartpole", ("normalize",), {"clip_obs": -1}, {"clip_obs": 0}, {"clip_obs": float("inf")})
mut("ppo", "cartpole", ("policy_kwargs", "net_arch"), [0], [-1], [10**9], [MAX_LAYER_WIDTH + 1], [64] * 100,
    {"pi": [10**6]}, {"pi": [64], "evil": [64]})
mut("ppo", "cartpole", ("policy_kwargs", "log_std_init"), 1e30)
mut("ppo", "cartpole", ("eval",), {"freq": 0}, {"episodes": 0}, {"episodes": 10**9}, {"freq": 2**70})
mut("ppo", "cartpole", ("wrappers",), ["TimeFeatureWrapper"] * 1000)
mut("dqn", "cartpole", _HP + ("buffer_size",), 10**12, 0)
mut("dqn", "cartpole", _HP + ("gradient_steps",), -5, 0, 10**9)
mut("dqn", "cartpole", _HP + ("learning_starts",), -1, 10**12)
mut("dqn", "cartpole", _HP + ("exploration_final_eps",), 2, -0.5)
mut("dqn", "cartpole", _HP + ("train_freq",), 0, 10**12)
mut("dqn", "cartpole", _HP + ("target_update_interval",), 0)
mut("sac", "pendulum", _HP + ("tau",), 2, -1)
mut("sac", "pendulum", _HP + ("ent_coef",), 1e30, -0.1)
mut("td3", "pendulum", _HP + ("policy_delay",), 0, 10**9)
mut("td3", "pendulum", _HP + ("target_policy_noise",), -1, float("inf"))
mut("td3", "pendulum", _HP + ("target_noise_clip",), float("nan"), -1)
mut("td3", "pendulum", _HP + ("action_noise_std",), -0.1, float("inf"), 1e30)
mut("td3", "pendulum", ("policy_kwargs", "n_critics"), 0, 10**6)


def _agent_text(agent: str, family: str, path: tuple[Any, ...], value: Any) -> str:
    data = yaml.safe_load(shipped("agents", agent).read_text())
    section = data["families"][family]
    node = section
    for part in path[:-1]:
        node = node.setdefault(part, {})
    node[path[-1]] = value
    return dump(data)


for _agent, _fam, _path, _value in _AGENT_MUTATIONS:
    add("config", f"{_agent}-{_fam}-{'.'.join(map(str, _path))}={_value!r:.30}",
        text_file("a.yaml", _agent_text(_agent, _fam, _path, _value)), lambda p, fam=_fam: load_agent(p, fam))
add("config", "ppo-cartpole-rollout-too-large",
    text_file("a.yaml", dump(set_path(set_path(shipped_data("agent"), ("families", "cartpole", "hyperparams", "n_steps"),
                                               100_000), ("families", "cartpole", "n_envs"), 256))),
    LOADERS["agent"])

_NAN, _INF = float("nan"), float("inf")
_FAMILY_MUTATIONS: dict[str, tuple[tuple[Any, ...], Any]] = {
    "return-range-1e308": (("return_range",), [1e308, 500]),
    "return-range-reversed": (("return_range",), [500, 0]),
    "return-range-equal": (("return_range",), [5, 5]),
    "return-range-nan": (("return_range",), [_NAN, 1]),
    "return-range-inf": (("return_range",), [0, _INF]),
    "return-range-three": (("return_range",), [0, 1, 2]),
    "success-threshold-inf": (("success_threshold",), _INF),
    "success-threshold-1e300": (("success_threshold",), 1e300),
    "param-nominal-nan": (("params", "length", "nominal"), _NAN),
    "param-low-neg-inf": (("params", "length", "low"), -_INF),
    "param-high-1e308": (("params", "length", "high"), 1e308),
    "param-bool": (("params", "length", "nominal"), True),
    "make-kwargs-nested": (("make_kwargs",), {"render_mode": {"x": [1, 2]}}),
    "make-kwargs-nan": (("make_kwargs",), {"max_episode_steps": _NAN}),
    "name-path": (("name",), "../../x"),
    "name-huge": (("name",), "n" * 10_000),
}
for _name, (_path, _value) in _FAMILY_MUTATIONS.items():
    add("config", f"family-{_name}", text_file("fam.yaml", dump(set_path(shipped_data("family"), _path, _value))),
        load_family)

_SUITE_MUTATIONS: dict[str, tuple[tuple[Any, ...], Any]] = {
    "budget-2**70": (("budget",), 2**70),
    "budget-0": (("budget",), 0),
    "budget-1e9-text": (("budget",), "1e9"),
    "seeds-1e9": (("seeds",), 10**9),
    "seeds-0": (("seeds",), 0),
    "seeds-negative-list": (("seeds",), [-1]),
    "seeds-2**40": (("seeds",), [2**40]),
    "seeds-1001": (("seeds",), list(range(1001))),
    "seeds-duplicates": (("seeds",), [1, 1]),
    "seeds-bool": (("seeds",), True),
    "eval-freq-0": (("eval", "freq"), 0),
    "eval-episodes-0": (("eval", "episodes"), 0),
    "eval-episodes-1e9": (("eval", "episodes"), 10**9),
    "confidence-1.5": (("detection", "confidence"), 1.5),
    "confidence-0.2": (("detection", "confidence"), 0.2),
    "confidence-nan": (("detection", "confidence"), _NAN),
    "patience-0": (("detection", "patience"), 0),
    "window-0": (("detection", "window"), 0),
    "min-evals-0": (("detection", "min_evals"), 0),
    "margin-1": (("detection", "margin"), 1.0),
    "threshold-nan": (("threshold",), _NAN),
    "threshold-1e300": (("threshold",), 1e300),
    "min-seeds-1": (("min_seeds",), 1),
    "alpha-0": (("alpha",), 0),
    "last-k-0": (("metrics", "last_k"), 0),
    "source-steps-2**70": (("pairs", 0, "source", "train", "steps"), 2**70),
    "source-steps-negative": (("pairs", 0, "source", "train", "steps"), -1),
    "source-seed-negative": (("pairs", 0, "source", "train", "seed"), -1),
    "source-params-nan": (("pairs", 0, "source", "train", "params"), {"length": _NAN}),
    "pair-budget-0": (("pairs", 0, "budget"), 0),
    "pair-threshold-inf": (("pairs", 0, "threshold"), _INF),
    "pair-name-path": (("pairs", 0, "name"), "../../etc"),
    "target-params-inf": (("pairs", 0, "target", "params"), {"length": _INF}),
    "target-params-out-of-bounds": (("pairs", 0, "target", "params"), {"length": 1e6}),
}
for _name, (_path, _value) in _SUITE_MUTATIONS.items():
    add("config", f"suite-{_name}", text_file("s.yaml", dump(set_path(shipped_data("suite"), _path, _value))),
        load_suite)

_CURRICULUM_MUTATIONS: dict[str, tuple[tuple[Any, ...], Any]] = {
    "stage-param-nan": (("stages", 0, "params", "length"), _NAN),
    "stage-param-out-of-bounds": (("stages", 0, "params", "length"), 1e9),
    "gate-steps-0": (("stages", 0, "until", "steps"), 0),
    "gate-steps-2**70": (("stages", 0, "until", "steps"), 2**70),
    "gate-mean-return-inf": (("stages", 0, "until", "mean_return"), _INF),
    "gate-window-0": (("stages", 0, "until", "window"), 0),
    "gate-min-steps-negative": (("stages", 0, "until", "min_steps"), -1),
    "stages-empty": (("stages",), []),
    "name-path": (("name",), "a/b"),
}
for _name, (_path, _value) in _CURRICULUM_MUTATIONS.items():
    add("config", f"curriculum-{_name}", text_file("c.yaml", dump(set_path(shipped_data("curriculum"), _path, _value))),
        load_curriculum)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_attack(case: AttackCase, tmp_path: Path) -> None:
    outcome = run_case(case, tmp_path)
    assert outcome.ok, outcome.describe()
    if case.expect is not None:
        assert len(str(outcome.error)) < 2000, outcome.describe()


# ------------------------------------------------------------------------------------------ specifics


def _write(tmp_path: Path, text: str, name: str = "x.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_duplicate_key_message_names_file_line_and_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "algo: ppo\nfamilies:\n  cartpole:\n    n_envs: 1\n    n_envs: 256\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    msg = str(info.value)
    assert str(path) in msg and "line 5" in msg and "'n_envs'" in msg and "line 4" in msg


def test_binary_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "junk.yaml"
    path.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(ConfigError, match=r"junk\.yaml: not a UTF-8 text file"):
        read_yaml(path)


def test_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path: Path) -> None:
    path = _write(tmp_path, laughs(9))
    with pytest.raises(ResourceLimitError, match="more than 1,000,000 values") as info:
        load_agent(path, "cartpole")
    assert len(str(info.value)) < 500


def test_deep_nesting_names_the_limit(tmp_path: Path) -> None:
    path = _write(tmp_path, "algo: " + "[" * 500 + "]" * 500 + "\n")
    with pytest.raises(ResourceLimitError, match="nested deeper than 64"):
        read_yaml(path)


def test_small_aliases_still_work(tmp_path: Path) -> None:
    path = _write(tmp_path, "algo: ppo\ndefaults: &d {n_envs: 2}\nfamilies: {cartpole: *d}\n")
    assert load_agent(path, "cartpole").n_envs == 2


def test_gym_id_with_module_needs_allow_import_and_loading_imports_nothing(tmp_path: Path) -> None:
    path = _import_payload(tmp_path)
    with pytest.raises(ConfigError, match=r"import the Python module 'somemodule.payload'.*allow_import: true"):
        load_family(path)
    path.write_text(path.read_text() + "allow_import: true\n")
    sys.path.insert(0, str(tmp_path))
    try:
        family = load_family(path)  # allowed by the file's author; loading still imports nothing
    finally:
        sys.path.remove(str(tmp_path))
    assert family.allow_import and family.gym_id == "somemodule.payload:CartPole-v1"
    assert not sentinel(tmp_path).exists()


def test_plain_and_namespaced_gym_ids_are_fine(tmp_path: Path) -> None:
    text = shipped("envs", "cartpole").read_text()
    for gym_id in ("CartPole-v1", "ALE/Pong-v5", "MyEnv", "my_ns/My.Env-v0"):
        path = _write(tmp_path, text.replace("gym_id: CartPole-v1", f"gym_id: {gym_id}"))
        assert load_family(path).gym_id == gym_id


def test_integer_written_with_an_exponent_gets_a_clear_message(tmp_path: Path) -> None:
    path = _write(tmp_path, "algo: ppo\nfamilies: {cartpole: {n_timesteps: 1e6}}\n")
    with pytest.raises(ConfigError, match=r"n_timesteps.*write it as 1000000"):
        load_agent(path, "cartpole")


def test_integral_floats_are_integers(tmp_path: Path) -> None:
    path = _write(tmp_path, "algo: ppo\nfamilies: {cartpole: {n_timesteps: 1.0e+6}}\n")
    assert load_agent(path, "cartpole").n_timesteps == 1_000_000


def test_gradient_steps_minus_one_means_as_many_as_env_steps() -> None:
    assert load_agent("dqn", "acrobot").hyperparams.gradient_steps == -1


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e400", "NaN", "-Infinity"])
def test_parse_set_refuses_non_finite(raw: str) -> None:
    with pytest.raises(ConfigError, match=r"length.*finite"):
        parse_set([f"length={raw}"])


# --------------------------------------------------------------------------------- property tests

#: Bounds every loaded model must satisfy, by key name (a key anywhere in the dumped model).
BOUNDS: dict[str, tuple[float, float]] = {
    "n_envs": (1, 256), "n_timesteps": (1, 10**9), "budget": (1, 10**9), "steps": (0, 10**9),
    "buffer_size": (1, 10**7), "batch_size": (1, 10**5), "n_steps": (1, 10**5), "n_epochs": (1, 1000),
    "gamma": (0, 1), "gae_lambda": (0, 1), "tau": (0, 1), "vf_coef": (0, 100), "max_grad_norm": (1e-300, 1e6),
    "target_kl": (1e-300, 100), "learning_starts": (0, 10**9), "gradient_steps": (-1, 10_000),
    "exploration_fraction": (0, 1), "exploration_initial_eps": (0, 1), "exploration_final_eps": (0, 1),
    "policy_delay": (1, 1000), "target_policy_noise": (0, 10), "target_noise_clip": (0, 10),
    "action_noise_std": (0, 10), "clip_obs": (1e-300, 1e6), "freq": (1, 10**9), "episodes": (1, 10_000),
    "seed": (0, 2**31 - 1), "confidence": (0.5, 1), "patience": (1, 10_000), "window": (1, 100_000),
    "min_evals": (1, 10_000), "min_seeds": (2, 1000), "last_k": (1, 10_000), "alpha": (1e-300, 1),
}


def check_bounds(value: Any, key: str = "") -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            check_bounds(v, str(k))
    elif isinstance(value, (list, tuple)):
        if key == "net_arch":
            assert len(value) <= 16 and all(1 <= n <= MAX_LAYER_WIDTH for n in value)
        if key == "seeds":
            assert 1 <= len(value) <= 1000 and all(0 <= s < 2**31 for s in value)
        for v in value:
            check_bounds(v, key)
    elif isinstance(value, float):
        assert math.isfinite(value), (key, value)
        if key in BOUNDS:
            assert BOUNDS[key][0] <= value <= BOUNDS[key][1], (key, value)
    elif isinstance(value, int) and not isinstance(value, bool):
        if key in BOUNDS:
            assert BOUNDS[key][0] <= value <= BOUNDS[key][1], (key, value)
        if key == "seeds":
            assert 1 <= value <= 1000


def check_loaded(model: Any) -> None:
    data = model.model_dump()
    check_bounds(data)
    if "return_range" in data:
        low, high = data["return_range"]
        assert low < high
    lr = data.get("hyperparams", {}).get("learning_rate")
    if isinstance(lr, float):
        assert 0 < lr <= 1
    if isinstance(lr, dict):
        assert 0 < lr["start"] <= 1 and 0 <= lr["end"] <= 1
    if "gym_id" in data:
        assert ":" not in data["gym_id"] or data["allow_import"]


_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
_leaf = st.one_of(
    st.none(), st.booleans(), _text,
    st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**9, 10**12, 1e308, -1e308, 1e-308, 0.5, "auto", "1e9", "nan",
                     "CartPole-v1", "os:system", "ppo", "cartpole", "linear"]),
)
_value = st.recursive(
    _leaf, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_text, inner, max_size=4)),
    max_leaves=12,
)


def _attempt(loader: str, path: Path, data: Any) -> None:
    path.write_text(dump(data), encoding="utf-8")
    try:
        model = LOADERS[loader](path)
    except RLTransferError as exc:
        assert len(str(exc)) < 2000, str(exc)[:300]
        return
    check_loaded(model)


_TMP = Path(tempfile.mkdtemp(prefix="rltransfer-config-props-"))


@pytest.mark.parametrize("loader", list(LOADERS))
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.dictionaries(_text, _value, max_size=6))
def test_random_documents_load_or_raise_config_error(loader: str, data: dict[str, Any]) -> None:
    _attempt(loader, _TMP / f"random-{loader}.yaml", data)


def _leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaf_paths(v, (*prefix, k))] or [prefix]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _leaf_paths(v, (*prefix, i))] or [prefix]
    return [prefix]


def _parent_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if isinstance(value, dict) else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _parent_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _parent_paths(v, (*prefix, i))
    return out


def _get(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


@pytest.mark.parametrize("loader", list(LOADERS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_shipped_configs_load_or_raise_config_error(loader: str, data: st.DataObject) -> None:
    base = shipped_data(loader)
    action = data.draw(st.sampled_from(["replace", "drop", "add"]))
    if action == "replace":
        path = data.draw(st.sampled_from(_leaf_paths(base)))
        doc = set_path(base, path, data.draw(_value)) if path else data.draw(_value)
    else:
        path = data.draw(st.sampled_from(_parent_paths(base)))
        doc = copy.deepcopy(base)
        parent = _get(doc, path)
        if action == "drop" and parent:
            del parent[data.draw(st.sampled_from(sorted(parent, key=str)))]
        else:
            parent[data.draw(_text)] = data.draw(_value)
    _attempt(loader, _TMP / f"mutated-{loader}.yaml", doc)
