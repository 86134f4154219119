from pathlib import Path

import pytest

from worldmodels.config import ConfigError, load_config, parse_override
from worldmodels.run.loop import check_buildable

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_presets_and_overrides_compose(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(
        "env:\n  spec: gym:Pendulum-v1\ntrain:\n  env_steps: 500\nagent:\n  name: sac\n  hidden: [64, 64]\n"
    )
    cfg = load_config([preset], ["train.env_steps=20000", "agent.actor_lr=1e-3", "env.time_limit=None"])
    assert cfg.env.spec == "gym:Pendulum-v1"
    assert cfg.train.env_steps == 20000
    assert cfg.agent.hidden == (64, 64) and cfg.agent.actor_lr == 1e-3
    assert cfg.env.time_limit is None
    assert type(cfg.agent).__name__ == "SACConfig"


def test_unknown_key_names_the_key_and_the_nearest_spelling():
    with pytest.raises(ConfigError, match=r"Unknown config key 'train.env_step'.*Did you mean 'env_steps'"):
        load_config([], ["train.env_step=10"])
    with pytest.raises(ConfigError, match=r"'agent.actor_rl'.*Did you mean 'actor_lr'"):
        load_config([], ["agent.actor_rl=0.1"])
    with pytest.raises(ConfigError, match=r"Unknown config key 'trian'.*Did you mean 'train'"):
        load_config([], ["trian.seed=1"])


def test_wrong_types_and_values_are_errors():
    with pytest.raises(ConfigError, match="train.env_steps: expected int"):
        load_config([], ["train.env_steps=lots"])
    with pytest.raises(ConfigError, match="env.obs"):
        load_config([], ["env.obs=rgb"])
    with pytest.raises(ConfigError, match="must not be negative"):
        load_config([], ["train.replay_ratio=-1"])
    with pytest.raises(ConfigError, match="Unknown agent 'sca'.*Did you mean 'sac'"):
        load_config([], ["agent.name=sca"])


def test_int_widens_to_float_and_overrides_need_an_equals_sign():
    assert load_config([], ["train.replay_ratio=2"]).train.replay_ratio == 2.0
    assert parse_override("a.b.c=[1, 2]") == {"a": {"b": {"c": [1, 2]}}}
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.env_steps")


def test_missing_preset_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config([tmp_path / "nope.yaml"])


def test_presets_include_other_presets_relative_to_themselves(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "base.yaml").write_text("train:\n  env_steps: 500\n  seed: 3\nagent:\n  name: sac\n")
    (tmp_path / "main.yaml").write_text("include: sub/base.yaml\ntrain:\n  seed: 7\n")
    cfg = load_config([tmp_path / "main.yaml"], ["train.env_steps=900"])
    assert (cfg.train.env_steps, cfg.train.seed, cfg.agent.name) == (900, 7, "sac")  # include < file < override
    (tmp_path / "loop.yaml").write_text("include: [loop.yaml]\n")
    with pytest.raises(ConfigError, match="includes loop.yaml, which includes it again"):
        load_config([tmp_path / "loop.yaml"])


def test_the_main_job_is_dreamer_from_pixels_on_cartpole_swingup():
    cfg = load_config([Path(__file__).resolve().parents[1] / "configs" / "default.yaml"])
    assert (cfg.agent.name, cfg.env.spec, cfg.env.obs, cfg.env.size, cfg.env.action_repeat) == (
        "dreamer",
        "dmc:cartpole-swingup",
        "pixels",
        64,
        2,
    )
    assert not cfg.env.fast_render, "the main job renders dm_control's standard pixels"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (ROOT / "configs").rglob("*.yaml") if "suites" not in p.parts and p.stem not in ("default",)),
    ids=lambda p: str(p.relative_to(ROOT / "configs")),
)
def test_every_committed_preset_builds_its_env_and_agent(path):
    cfg = load_config([path])
    check_buildable(cfg)  # a ConfigError (failing the test) where the preset's settings do not fit its task


@pytest.mark.parametrize(
    ("agent", "settings", "renamed"),
    [
        ("dreamer", "ActorCriticSettings", {"layers": "head_layers"}),
        ("mbac", "ActorCriticSettings", {"hidden": "ac_hidden", "layers": "ac_layers"}),
        ("sac", "SACSettings", {}),
        ("mbpo", "SACSettings", {"hidden": "policy_hidden"}),
    ],
)
def test_agent_config_defaults_are_the_behaviour_settings_defaults(agent, settings, renamed):
    """The shared field mixins (ActorCriticFields, SACFields) repeat the behaviours' settings with docs for --help:
    an agent built from its default config gets exactly the behaviour's defaults."""
    import dataclasses

    import worldmodels.agents  # noqa: F401  (registers the agents' configs)
    from worldmodels.behaviours import actor_critic, sac
    from worldmodels.config import AGENT_CONFIGS, settings_from

    cls = getattr(actor_critic if settings == "ActorCriticSettings" else sac, settings)
    filled, defaults = settings_from(cls, AGENT_CONFIGS[agent](), **renamed), cls()
    differ = {f.name for f in dataclasses.fields(cls) if getattr(filled, f.name) != getattr(defaults, f.name)}
    assert not differ, differ
