"""Error rates and power of rltransfer's verdicts on synthetic learning-curve families.

Run: ``.venv/bin/python benchmarks/scripts/verdict_error_rates.py [--pairs 10000] [--seed 0]``

Prints markdown tables, for the six families of :mod:`rltransfer.synthetic` at 3, 5 and 10 seeds per arm:

1. false verdicts on null pairs (either sign, normalized AUC) with 95% Clopper-Pearson intervals: the
   rule of :func:`rltransfer.statistics.verdict` (Welch t, Hsu df) and, for comparison, the same rule
   with Welch-Satterthwaite df;
2. power at planted effects d = 1, 2, 3 (pooled sds of the family's planted metric): the share of pairs
   given the right-signed verdict on AUC;
3. :func:`~rltransfer.statistics.profile_verdict` outcomes on null pairs and on the crossover, jumpstart
   and logistic (speed-up) families;
4. TOST (equivalence) on null pairs and at a true difference equal to the margin;
5. time to threshold on the heavily censored family: the Welch-Hsu test on censored-as-budget values,
   the permutation log-rank test and the RMST difference, on nulls and at d = 1, 2, 3;
6. coverage of the 95% intervals of :func:`~rltransfer.statistics.bootstrap_ci_diff` (t, studentized
   bootstrap, percentile bootstrap) on null pairs.

``--pairs`` null pairs per cell (effects and TOST use a quarter, coverage ``--coverage-pairs``). Everything
is vectorized over pairs except the coverage table, which calls the library function pair by pair.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from rltransfer import statistics as st
from rltransfer import synthetic as sy

SEEDS = (3, 5, 10)
EFFECTS = (1.0, 2.0, 3.0)
PATTERNS = [label for label in st.PROFILE_LABELS if label not in ("equivalent", "inconclusive")]


def rate_ci(hits: np.ndarray) -> str:
    k, n = int(np.sum(hits)), int(np.size(hits))
    low, high = st.clopper_pearson(k, n)
    return f"{k / n:.1%} [{low:.1%}, {high:.1%}]"


def metrics(family: str, n_pairs: int, n: int, effect: float, seed: int) -> tuple[dict, dict, tuple[float, float]]:
    batch = sy.simulate_pairs(family, n_pairs, n, effect=effect, random_state=seed)
    mt, ms = batch.metrics()
    return mt, ms, (batch.low, batch.high)


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000, help="null pairs per (family, seeds) cell")
    parser.add_argument("--coverage-pairs", type=int, default=1500, help="pairs per cell of the coverage table")
    parser.add_argument("--seed", type=int, default=0, help="base random seed")
    args = parser.parse_args()
    start = time.perf_counter()
    n_null, n_eff = args.pairs, max(100, args.pairs // 4)
    families = list(sy.FAMILIES)
    print(f"# Verdict error rates\n\nCommand: `{' '.join([sys.executable.split('/')[-1], *sys.argv])}`\n")
    print(f"{n_null} null pairs per cell, {n_eff} per effect cell; alpha = 0.05; normalized AUC unless said.\n")

    null: dict[tuple[str, int], tuple[dict, dict, tuple[float, float]]] = {}
    for i, fam in enumerate(families):
        for n in SEEDS:
            null[fam, n] = metrics(fam, n_null, n, 0.0, args.seed + 1000 * i + n)

    # 1. false verdicts
    rows = []
    for fam in families:
        row = [fam]
        for n in SEEDS:
            mt, ms, _ = null[fam, n]
            hsu = st.verdict_labels(mt["auc"], ms["auc"])
            satt = st.verdict_labels(mt["auc"], ms["auc"], df="satterthwaite")
            row += [rate_ci(hsu != "inconclusive"), rate_ci(satt != "inconclusive")]
        rows.append(row)
    head = ["family"] + [f"{n} seeds: {rule}" for n in SEEDS for rule in ("verdict (Hsu)", "Satterthwaite")]
    print("## 1. False verdicts on null pairs (positive + negative), 95% Clopper-Pearson\n")
    print(table(head, rows) + "\n")

    # 2. power
    rows = []
    for i, fam in enumerate(families):
        planted = sy.planted_effects(fam, 1.0)["auc"]
        for n in SEEDS:
            row = [fam, str(n)]
            for d in EFFECTS:
                mt, ms, _ = metrics(fam, n_eff, n, d, args.seed + 50_000 + 1000 * i + 10 * int(d) + n)
                labels = st.verdict_labels(mt["auc"], ms["auc"])
                want = "positive" if planted > 0 else "negative"
                wrong = "negative" if want == "positive" else "positive"
                row.append(f"{np.mean(labels == want):.1%} ({np.mean(labels == wrong):.1%})")
            rows.append(row)
    print("## 2. Power on AUC: right-signed verdicts (wrong-signed in parentheses)\n")
    print("d is in pooled sds of the family's planted metric: AUC for logistic, bimodal, unequal_spread and "
          "censored; initial return (+d) and final performance (-d) for crossover (AUC effect "
          f"{sy.planted_effects('crossover', 1.0)['auc']:+.2f} d); initial return for jumpstart (AUC effect "
          f"{sy.planted_effects('jumpstart', 1.0)['auc']:+.3f} d).\n")
    print(table(["family", "seeds", "d = 1", "d = 2", "d = 3"], rows) + "\n")

    # 3. profile
    rows = []
    for fam in families:
        row = [fam]
        for n in SEEDS:
            mt, ms, rng = null[fam, n]
            labels = st.profile_labels(mt, ms, return_range=rng)
            row.append(rate_ci(np.isin(labels, PATTERNS)))
        rows.append(row)
    print("## 3a. Profile verdict on null pairs: any pattern named (better, worse, jumpstart only, crossover, "
          "slow start)\n")
    print(table(["family"] + [f"{n} seeds" for n in SEEDS], rows) + "\n")
    rows = []
    for j, fam in enumerate(("crossover", "jumpstart", "logistic")):
        for n in SEEDS:
            for d in EFFECTS:
                mt, ms, rng = metrics(fam, n_eff, n, d, args.seed + 90_000 + 1000 * j + 100 * n + int(d))
                labels = st.profile_labels(mt, ms, return_range=rng)
                rows.append([fam, str(n), f"{d:g}"] + [f"{np.mean(labels == lab):.1%}" for lab in st.PROFILE_LABELS])
    print("## 3b. Profile verdict outcomes at planted effects\n")
    print(table(["family", "seeds", "d", *st.PROFILE_LABELS], rows) + "\n")

    # 4. TOST
    rows = []
    for j, fam in enumerate(("logistic", "bimodal", "unequal_spread", "censored")):
        sd_pooled = sy.planted_differences(fam, 1.0)["auc"]  # one pooled sd of AUC
        for n in SEEDS:
            mt, ms, _ = null[fam, n]
            row = [fam, str(n)]
            for margin in (0.05, sd_pooled, 2 * sd_pooled):
                row.append(f"{np.mean(st.verdict_labels(mt['auc'], ms['auc'], margin=margin) == 'equivalent'):.1%}")
            mt, ms, _ = metrics(fam, n_eff, n, 1.0, args.seed + 70_000 + 1000 * j + n)
            at_margin = st.verdict_labels(mt["auc"], ms["auc"], margin=sd_pooled) == "equivalent"
            row.append(rate_ci(at_margin))
            row.append(f"{st.seeds_for_margin(sd_pooled, sd_pooled, goal='equivalence'):g}")
            rows.append(row)
    print("## 4. Equivalence (TOST within +-margin on AUC)\n")
    print("Columns 3-5: share of null pairs called equivalent at margin 0.05, 1 and 2 pooled sds. Column 6: "
          "false equivalence when the true difference is exactly the margin (1 sd), 95% CI. Column 7: "
          "seeds per arm that seeds_for_margin plans for 80% power at margin 1 sd.\n")
    print(table(["family", "seeds", "margin 0.05", "margin 1 sd", "margin 2 sd", "true diff = margin (1 sd)",
                 "planned seeds, 1 sd"], rows) + "\n")

    # 5. time to threshold under heavy censoring
    rows = []
    for n in SEEDS:
        for d in (0.0, *EFFECTS):
            if d == 0.0:
                mt, ms, _ = null["censored", n]
                mt = {k: v[:n_eff] for k, v in mt.items()}
                ms = {k: v[:n_eff] for k, v in ms.items()}
            else:
                mt, ms, _ = metrics("censored", n_eff, n, d, args.seed + 80_000 + 10 * n + int(d))
            tt, ct, ts, cs = mt["time_to_threshold"], mt["ttt_censored"], ms["time_to_threshold"], ms["ttt_censored"]
            budget = float(sy.DEFAULT_STEPS[-1])
            cab = st.verdict_labels(np.where(ct, budget, tt), np.where(cs, budget, ts), higher_is_better=False)
            lr = np.asarray(st.logrank_test(tt, ct, ts, cs, n_perm=199, random_state=n))
            rm = st.rmst_difference(tt, ct, ts, cs)
            rm_pos = (np.asarray(rm.p_value) < 0.05) & (np.asarray(rm.ci.point) > 0)
            fmt = rate_ci if d == 0.0 else (lambda x: f"{np.mean(x):.1%}")
            rows.append([str(n), f"{d:g}", f"{np.mean(ct):.0%} / {np.mean(cs):.0%}",
                         fmt(cab == "positive") if d else fmt(cab != "inconclusive"),
                         fmt(lr < 0.05), fmt(rm_pos) if d else fmt(np.asarray(rm.p_value) < 0.05)])
    print("## 5. Time to threshold on the censored family (threshold 400 of 500)\n")
    print("d = 0: false rejections with 95% CI; d > 0 (speed-up, d on AUC): share of pairs where transfer is "
          "found faster. Welch-Hsu on censored-as-budget values; permutation log-rank (199 random splits, exact "
          "below 20,000 splits); RMST difference (Welch-Hsu df).\n")
    print(table(["seeds", "d", "censored (transfer / scratch)", "Welch-Hsu, censored = budget",
                 "log-rank (permutation)", "RMST"], rows) + "\n")

    # 6. coverage
    rows = []
    for fam in ("logistic", "bimodal", "unequal_spread"):
        for n in SEEDS:
            mt, ms, _ = null[fam, n]
            k = min(args.coverage_pairs, n_null)
            miss = {m: 0 for m in ("t", "studentized", "percentile")}
            for i in range(k):
                for m in miss:
                    iv = st.bootstrap_ci_diff(mt["auc"][i], ms["auc"][i], n_boot=999, random_state=i, method=m)  # type: ignore[arg-type]
                    miss[m] += not (iv.low <= 0.0 <= iv.high)
            rows.append([fam, str(n)] + [rate_ci(np.arange(k) < miss[m]) for m in miss])
    print("## 6. 95% intervals of the AUC difference that miss the truth (null pairs; 5% promised)\n")
    print(table(["family", "seeds", "t (Hsu df; the default)", "studentized bootstrap", "percentile bootstrap"],
                rows) + "\n")
    print(f"Wall time: {time.perf_counter() - start:.0f} s.")


if __name__ == "__main__":
    main()
