"""The report's statistics on worked examples: t intervals, env steps to a return, sample-efficiency ratios."""

import math

import pytest

from worldmodels.analysis.benchmark import efficiency_table, plot_curves, report_budgets, table
from worldmodels.analysis.statistics import (
    StepsToReturn,
    efficiency_ratio,
    first_reach,
    format_interval,
    interval95,
    steps_to_return,
    t_quantile,
)


def test_interval_is_student_t_on_a_worked_example():
    # values 1, 2, 3: mean 2, sample std 1, t(2 dof) = 4.303 -> half-width 4.303 / sqrt(3) = 2.484
    mean, half = interval95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.303 / math.sqrt(3), abs=1e-9)
    assert format_interval([1.0, 2.0, 3.0], digits=1) == "2.0 ± 2.5"
    assert format_interval([-150.0]) == "-150" and math.isnan(interval95([5.0])[1])
    assert t_quantile(1) == 12.706 and t_quantile(30) == pytest.approx(2.042, abs=0.003)
    assert t_quantile(100) == pytest.approx(1.984, abs=0.003)
    with pytest.raises(ValueError, match="at least 2 values"):
        t_quantile(0)


def test_steps_to_return_counts_a_seed_that_never_gets_there_at_its_budget():
    assert first_reach({1000: -900.0, 2000: -240.0, 3000: -260.0}, -250.0) == 2000
    assert first_reach({1000: -900.0}, -250.0) is None
    seeds = {0: {1000: -900.0, 2000: -200.0}, 1: {1000: -150.0, 2000: -140.0}}
    assert steps_to_return(seeds, -250.0) == StepsToReturn(1500.0, 2, 2)
    censored = steps_to_return({0: {1000: -900.0, 4000: -800.0}, 1: {1000: -100.0, 4000: -90.0}}, -250.0)
    assert censored == StepsToReturn(2500.0, 1, 2) and str(censored) == ">2,500 (1/2)"


def test_efficiency_ratio_is_a_bound_when_one_side_never_reached_the_return():
    sac, fast = StepsToReturn(8000.0, 3, 3), StepsToReturn(2000.0, 3, 3)
    assert efficiency_ratio(sac, fast) == "4.0x"
    assert efficiency_ratio(StepsToReturn(10000.0, 1, 3), fast) == ">5.0x"  # SAC's true figure is larger
    assert efficiency_ratio(fast, StepsToReturn(10000.0, 2, 3)) == "<0.2x"
    assert efficiency_ratio(StepsToReturn(10000.0, 0, 3), StepsToReturn(10000.0, 2, 3)) == "-"


def curve_rows(agent, obs, seed, curve, target=None):
    protocol = {"task": "T", "env_steps": 4000, "eval_every": 1000, "eval_episodes": 2, "time_limit": None}
    protocol |= {"fast_render": False, "action_repeat": 1}
    return [
        {
            "task": "T",
            "agent": agent,
            "obs": obs,
            "seed": seed,
            "env_steps": x,
            "action_repeat": 1,
            "return_mean": y,
            "wall_clock_s": 1.0,
            "updates_per_s": 1.0,
            "protocol": protocol,
            **({"target_return": target} if target is not None else {}),
        }
        for x, y in curve.items()
    ]


def suite_rows():
    sac = [{1000: -1200.0, 2000: -900.0, 3000: -240.0, 4000: -200.0}, {1000: -1300, 2000: -800, 3000: -600, 4000: -220}]
    mbac = [
        {1000: -1200.0, 2000: -200.0, 3000: -150.0, 4000: -140.0},
        {1000: -1100, 2000: -190, 3000: -170, 4000: -150},
    ]
    dreamer = [{1000: -1200.0, 2000: -1000.0, 3000: -900.0, 4000: -700.0}]
    rows = [r for s, c in enumerate(sac) for r in curve_rows("sac", "state", s, c, target=-250.0)]
    rows += [r for s, c in enumerate(mbac) for r in curve_rows("mbac", "state", s, c, target=-250.0)]
    return rows + [r for s, c in enumerate(dreamer) for r in curve_rows("dreamer", "pixels", s, c, target=-250.0)]


def test_efficiency_table_on_a_worked_example():
    markdown = efficiency_table(suite_rows(), -250.0)
    assert "| obs | agent | seeds | return at 1,000 | return at 2,000 | return at 4,000 | env steps to -250" in markdown
    # sac reaches -250 at 3000 and 4000 (mean 3500); mbac at 2000 and 2000: 1.75x fewer env steps
    sac_line = "| state | sac | 2 | -1250 ± 635 | -850 ± 635 | -210 ± 127 | 3,500 (2/2) |  |"
    assert sac_line in markdown
    assert "| state | mbac | 2 | -1150 ± 635 | -195 ± 64 | -145 ± 64 | 2,000 (2/2) | 1.8x |" in markdown
    # dreamer ran seed 0 only: its ratio is against sac's seed 0 (3,000), not sac's mean over both seeds (3,500)
    assert "| pixels | dreamer | 1 | -1200 | -1000 | -700 | >4,000 (0/1) | <0.8x |" in markdown


def test_the_ratio_to_the_baseline_uses_only_the_seeds_both_ran():
    # sac seeds 0, 1 reach -250 at 3,000 and 4,000; mbac's seed 1 at 1,000 and its seed 7 (no sac twin) at 4,000
    rows = suite_rows()[:8]  # sac's two seeds
    rows += curve_rows("mbac", "state", 1, {1000: -200.0, 2000: -100.0, 3000: -90.0, 4000: -80.0}, target=-250.0)
    rows += curve_rows("mbac", "state", 7, {1000: -900.0, 2000: -800.0, 3000: -700.0, 4000: -240.0}, target=-250.0)
    rows += curve_rows("dreamer", "pixels", 5, {1000: -200.0, 2000: -100.0, 3000: -90.0, 4000: -80.0}, target=-250.0)
    markdown = efficiency_table(rows, -250.0)
    assert "| state | mbac | 2 | -550 ± 4447 | -450 ± 4447 | -160 ± 1016 | 2,500 (2/2) | 4.0x |" in markdown
    assert "| pixels | dreamer | 1 | -200 | -100 | -80 | 1,000 (1/1) | - |" in markdown  # no seed shared


def test_table_takes_the_target_from_the_rows_and_the_command_line_wins():
    assert "env steps to -250 (seeds reaching it)" in table(suite_rows())
    assert "env steps to -180 (seeds reaching it)" in table(suite_rows(), targets={"T": -180.0})
    no_target = [{k: v for k, v in r.items() if k != "target_return"} for r in suite_rows()]
    assert "No target return stated" in table(no_target)


def test_report_budgets_are_about_a_quarter_a_half_and_all_of_the_budget():
    assert report_budgets([1000, 2000, 3000, 4000]) == [1000, 2000, 4000]
    assert report_budgets(list(range(10000, 100001, 10000))) == [20000, 50000, 100000]  # a tie goes to the earlier
    assert report_budgets([400]) == [400]


def test_latent_and_state_agents_share_one_plot(tmp_path):
    names = sorted(p.name for p in plot_curves(suite_rows(), tmp_path))
    assert names == ["T-all.png", "T-pixels.png", "T-state.png"]
    assert (tmp_path / "T-all.png").read_bytes()[:4] == b"\x89PNG"


def test_cost_table_splits_each_agents_time_per_decision_update_and_env_step():
    from worldmodels.analysis.cost_report import cost_table

    row = {"task": "T", "obs": "state", "agent": "pets", "seed": 0, "env_steps": 4000}
    row["time_s"] = {"warmup": 0.5, "decide": 30.0, "env": 4.0, "update:model": 2.0, "model_check": 0.0, "eval": 3.5}
    row["time_n"] = {"warmup": 200, "decide": 800, "env": 4000, "update:model": 4, "model_check": 3, "eval": 2}
    table = cost_table([row, {**row, "env_steps": 2000, "time_s": {"decide": 1.0}}, {"agent": "sac", "seed": 0}])
    # 30 s / 800 decisions = 37.5 ms; 2 s / 4 refits = 500 ms; 4 s / 4000 env steps = 1 ms; shares of 40 s
    assert "| state | pets | 1 | 37.50 | model 500.0 | 1.000 | 75% | 5% | 10% | 0% | 9% |" in table
    assert "sac" not in table and cost_table([{"agent": "sac"}]) == ""


def test_no_baseline_means_no_ratio_column_and_conflicting_targets_are_an_error():
    rows = [r for r in suite_rows() if r["agent"] != "sac"]
    markdown = efficiency_table(rows, -250.0)
    assert "No sac rows here: no ratios." in markdown and "fewer env steps" not in markdown
    assert "fewer env steps than sac (state)" in efficiency_table(suite_rows(), -250.0)
    conflicting = suite_rows()
    conflicting[0]["target_return"] = -100.0
    with pytest.raises(ValueError, match=r"different target returns \[-250.0, -100.0\]: pick one with --target"):
        table(conflicting)
    assert "env steps to -300" in table(conflicting, targets={"T": -300.0})  # --target settles it
    assert efficiency_ratio(StepsToReturn(1000.0, 1, 1), StepsToReturn(0.0, 1, 1)) == "-"
