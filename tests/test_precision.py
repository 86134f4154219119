"""bf16: auto picks bfloat16 only where the device computes it natively; true/false force it; bad values are errors."""

import numpy as np
import pytest
import torch
from gymnasium import spaces

from worldmodels.agents.pets import PETSAgent, PETSConfig
from worldmodels.config import ConfigError, load_config
from worldmodels.envs.spaces import observation_space
from worldmodels.nets import precision
from worldmodels.nets.precision import autocast, native_bf16, use_bf16

CPU = torch.device("cpu")


def test_auto_follows_the_cpu_features(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    assert not native_bf16(CPU) and use_bf16("auto", CPU) is False
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    assert native_bf16(CPU) and use_bf16("auto", CPU) is True


def test_true_and_false_are_kept_whatever_the_hardware():
    assert use_bf16(True, CPU) is True and use_bf16(False, CPU) is False
    with pytest.raises(ValueError, match="agent.bf16 must be true, false or auto"):
        use_bf16("fast", CPU)


def test_autocast_runs_matmuls_in_bfloat16_only_when_enabled():
    x = torch.randn(4, 8)
    w = torch.randn(8, 3)
    with autocast(True, CPU):
        assert (x @ w).dtype == torch.bfloat16
    with autocast(False, CPU):
        assert (x @ w).dtype == torch.float32


@pytest.mark.parametrize("preset", ["configs/dreamer/cartpole_swingup.yaml", "configs/pets/cartpole_swingup.yaml"])
def test_presets_default_to_auto_and_reject_other_words(preset):
    assert load_config([preset]).agent.bf16 == "auto"
    assert load_config([preset], ["agent.bf16=false"]).agent.bf16 is False
    with pytest.raises(ConfigError, match="agent.bf16: expected true, false or auto, got 'fast'"):
        load_config([preset], ["agent.bf16=fast"])


def test_agents_resolve_auto_for_their_device(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    box = spaces.Box(-1, 1, (1,), np.float32)
    agent = PETSAgent(PETSConfig(hidden=(8,)), observation_space("state", 64, 1), box, "cpu")
    assert agent.bf16 is False
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert PETSAgent(PETSConfig(hidden=(8,)), observation_space("state", 64, 1), box, "cpu").bf16 is True
