"""Ensembles of deterministic or probabilistic MLPs on states, as PETS and MBPO use them.

Dimension letters: K members, N samples, I inputs (state + action), O outputs (state delta [+ reward]),
P particles, S state dims, A action dims.

Every member is trained on its own bootstrap of the data, all members in one batched matmul per layer.
Inputs are normalised with statistics fitted on the data; the model predicts the normalised change of state
(and optionally the reward). A held-out split drives early stopping, keeping each member's best weights.
Uncertainty splits into epistemic (variance of member means) and aleatoric (mean of member variances).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from worldmodels.nets.guarded_step import NonFiniteUpdate, guarded_step
from worldmodels.nets.mlp import EnsembleMLP
from worldmodels.nets.optim import adam


class Ensemble(nn.Module):
    def __init__(
        self,
        state_dim: int,
        action_dim: int,
        members: int = 5,
        hidden: tuple[int, ...] = (200, 200, 200),
        probabilistic: bool = True,
        learn_reward: bool = False,
        activation=nn.SiLU,
    ):
        super().__init__()
        self.state_dim, self.action_dim, self.members = state_dim, action_dim, members
        self.probabilistic, self.learn_reward = probabilistic, learn_reward
        in_dim, self.out_dim = state_dim + action_dim, state_dim + int(learn_reward)
        self.net = EnsembleMLP(members, in_dim, hidden, self.out_dim * (2 if probabilistic else 1), activation)
        # Soft bounds of the log-variance (PETS), learned, so predicted variances stay in a sane range.
        self.max_logvar = nn.Parameter(torch.full((self.out_dim,), 0.5))
        self.min_logvar = nn.Parameter(torch.full((self.out_dim,), -10.0))
        for name in ("in_mean", "in_std", "out_mean", "out_std"):
            self.register_buffer(name, torch.zeros(in_dim if name.startswith("in") else self.out_dim))
        self.in_std.fill_(1.0)
        self.out_std.fill_(1.0)

    # -- data transforms ------------------------------------------------------------------------------------
    def fit_normalizer(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        self.in_mean.copy_(inputs.mean(0))
        self.in_std.copy_(inputs.std(0).clamp(min=1e-6))
        self.out_mean.copy_(targets.mean(0))
        self.out_std.copy_(targets.std(0).clamp(min=1e-6))

    def targets(self, states, actions, next_states, rewards=None) -> torch.Tensor:
        """What the members regress: state change [N, S] (+ reward [N, 1])."""
        parts = [next_states - states] + ([rewards.reshape(-1, 1)] if self.learn_reward else [])
        return torch.cat(parts, -1)

    # -- prediction -----------------------------------------------------------------------------------------
    def forward(self, inputs: torch.Tensor, members: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """inputs [K, N, I] (or [N, I], shared) -> normalised mean and log-variance [K, N, O]; with ``members``
        (indices [E]) only those members run, on inputs [E, N, I]."""
        out = self.net((inputs - self.in_mean) / self.in_std, members)
        if not self.probabilistic:
            return out, torch.zeros_like(out)
        mean, logvar = out.chunk(2, -1)
        logvar = self.max_logvar - F.softplus(self.max_logvar - logvar)
        logvar = self.min_logvar + F.softplus(logvar - self.min_logvar)
        return mean, logvar

    def predict(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Every member on the same inputs [N, S], [N, A] (or member k on its own, [K, N, S], [K, N, A]) -> mean and
        variance of the target, [K, N, O], in data units (variance 0 for deterministic members)."""
        mean, logvar = self(torch.cat([states, actions], -1))
        var = logvar.exp() * self.out_std**2 if self.probabilistic else torch.zeros_like(mean)
        return mean * self.out_std + self.out_mean, var

    def uncertainty(self, states, actions) -> tuple[torch.Tensor, torch.Tensor]:
        """(epistemic, aleatoric) variances [N, O]: variance of member means, mean of member variances."""
        mean, var = self.predict(states, actions)
        return mean.var(0, unbiased=False), var.mean(0)

    def step_members(self, states: torch.Tensor, actions: torch.Tensor, sample: bool = True, generator=None):
        """Member k advances its own particles: states [K, M, S], actions [K, M, A] -> next states [K, M, S],
        rewards [K, M] (when learned, else None)."""
        mean, logvar = self(torch.cat([states, actions], -1))
        if sample and self.probabilistic:
            mean = mean + (0.5 * logvar).exp() * torch.randn(mean.shape, generator=generator, device=mean.device)
        out = mean * self.out_std + self.out_mean  # [K, M, O]
        return states + out[..., : self.state_dim], (out[..., -1] if self.learn_reward else None)

    def step_random_member(
        self,
        states: torch.Tensor,
        actions: torch.Tensor,
        members: torch.Tensor,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ):
        """Each of M transitions is stepped by one of ``members`` (indices [E], e.g. MBPO's elites) drawn at random,
        in equal shares (position j of a random permutation goes to member j mod E), so only those members run,
        each on about M / E inputs: states [M, S], actions [M, A] -> next states [M, S], rewards [M] (None when not
        learned). Differentiable in states and actions (the noise of a sampled step is reparameterised)."""
        m, e = states.shape[0], len(members)
        share = -(-m // e)  # ceil(M / E)
        order = torch.randperm(m, generator=generator, device=states.device)  # generator: on the states' device
        slots = torch.arange(share * e, device=states.device).reshape(share, e).T  # [E, share] positions j
        inputs = torch.cat([states, actions], -1)[order[slots % m]]  # [E, share, I]; past M: repeats, dropped
        mean, logvar = self(inputs, members)
        if sample and self.probabilistic:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            mean = mean + (0.5 * logvar).exp() * noise
        out = (mean * self.out_std + self.out_mean).transpose(0, 1).reshape(e * share, -1)[:m]  # [M, O] permuted
        delta = torch.empty_like(out).index_copy(0, order, out)  # back to the input order
        return states + delta[:, : self.state_dim], (delta[:, -1] if self.learn_reward else None)

    # -- training -------------------------------------------------------------------------------------------
    def member_loss(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Gaussian NLL (or MSE) per member on [K, B, I] / [K, B, O] normalised targets -> [K]."""
        mean, logvar = self(inputs)
        if not self.probabilistic:
            return (mean - targets).pow(2).mean((1, 2))
        return ((mean - targets).pow(2) * torch.exp(-logvar) + logvar).mean((1, 2))


def fit_ensemble(
    model: Ensemble,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    epochs: int = 50,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 5e-5,
    holdout_ratio: float = 0.1,
    patience: int = 5,
    min_improvement: float = 0.01,
    generator=None,
) -> dict[str, float]:
    """Train every member on its own bootstrap; stop after ``patience`` epochs in which no member's held-out MSE
    fell by more than ``min_improvement`` of its best so far (MBPO's and mbrl-lib's relative 1% rule; they score
    the MSE in data units, this the normalised one, and each member keeps its own best weights, as MBPO does).

    inputs [N, I], targets [N, O] in data units. Returns the final training loss, the held-out MSE (mean, and
    per member: the best one's weights are kept, so MBPO ranks its elites by it) and the epochs trained.
    """
    n = inputs.shape[0]
    before = copy.deepcopy(model.state_dict())  # restored if a step turns out non-finite
    order = torch.randperm(n, generator=generator)
    holdout = max(1, int(n * holdout_ratio)) if n > 10 else 0
    val_idx, train_idx = order[:holdout], order[holdout:]
    model.fit_normalizer(inputs[train_idx], targets[train_idx])
    norm_targets = (targets - model.out_mean) / model.out_std
    k = model.members
    bootstrap = train_idx[torch.randint(len(train_idx), (k, len(train_idx)), generator=generator)]  # [K, Ntrain]
    optimizer = adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best_val = torch.full((k,), float("inf"), device=inputs.device)
    best_state, stale, train_loss = copy.deepcopy(model.state_dict()), 0, float("nan")
    done = 0
    for _ in range(epochs):
        done += 1
        order = torch.argsort(torch.rand(bootstrap.shape, generator=generator), 1)
        shuffled = bootstrap.gather(1, order)  # [K, Ntrain]
        for start in range(0, shuffled.shape[1], batch_size):
            idx = shuffled[:, start : start + batch_size]  # [K, B]
            loss = model.member_loss(inputs[idx], norm_targets[idx]).sum()
            if model.probabilistic:
                loss = loss + 0.01 * (model.max_logvar.sum() - model.min_logvar.sum())
            try:
                guarded_step(optimizer, loss, model.parameters(), "ensemble")
            except NonFiniteUpdate:
                model.load_state_dict(before)
                raise
            train_loss = loss.item()
        if not holdout:
            continue
        with torch.no_grad():
            mean, _ = model(inputs[val_idx])
            val = (mean - norm_targets[val_idx]).pow(2).mean((1, 2))  # [K]
        improved = val < best_val - min_improvement * best_val.abs().clamp(max=1e6)  # [K]
        if improved.any():
            state = model.state_dict()
            for name, tensor in state.items():  # keep each improved member's weights (member axis first)
                if tensor.dim() and tensor.shape[0] == k and name.startswith("net."):
                    best_state[name][improved] = tensor[improved].clone()
                elif not name.startswith("net."):
                    best_state[name] = tensor.clone()
            best_val = torch.where(improved, val, best_val)
            stale = 0
        else:
            stale += 1
            if stale >= patience:
                break
    if holdout:
        model.load_state_dict(best_state)
    return {
        "train_loss": train_loss,
        "holdout_mse": float(best_val.mean()) if holdout else float("nan"),
        "holdout_mse_members": best_val.tolist() if holdout else [float("nan")] * k,
        "epochs": done,
    }


PROPAGATIONS = ("ts_inf", "ts1", "expectation")


@torch.no_grad()
def particle_rollout(
    model: Ensemble,
    start: torch.Tensor,
    actions: torch.Tensor,
    particles: int = 20,
    propagation: str = "ts_inf",
    reward_fn=None,
    done_fn=None,
    generator=None,
    max_rows: int | None = None,
):
    """Propagate P particles per candidate through the ensemble (PETS).

    start [B, S], actions [B, N, H, A] -> Rollout(rewards [B, N, H] mean over particles, reward_std [B, N, H],
    final_states [B, N, S] mean of the particles alive at the end (of all where none is), final_alive [B, N]
    their share). ts_inf: particle p follows member p mod K for the whole horizon;
    ts1: every step each particle picks a member at random (a fresh shuffle within its candidate);
    expectation: every particle moves by the mean of all members (deterministic).
    reward_fn(states [M, S], actions [M, A], next_states [M, S]) -> [M] when the reward is known, else the
    ensemble's learned reward is used. done_fn(next_states [M, S]) -> [M] bool ends a particle's episode: it
    keeps the reward of the step that ended it and earns nothing after. With ``max_rows`` the B * N * P model
    rows are cut into passes of at most that many whole candidates (at least one): on a CPU one big pass can run
    slower per row than several cache-sized ones.
    """
    from worldmodels.planning.shooting import Rollout

    if propagation not in PROPAGATIONS:
        raise ValueError(f"propagation must be one of {PROPAGATIONS}, got {propagation!r}")
    k = model.members
    if propagation != "expectation" and particles % k:
        raise ValueError(f"particles ({particles}) must be a multiple of the ensemble size ({k}) for {propagation}")
    if reward_fn is None and not model.learn_reward:
        raise ValueError("the ensemble learns no reward: pass reward_fn (the task's known reward)")
    b, n, horizon, _ = actions.shape
    per_pass = max(1, max_rows // particles) if max_rows else b * n  # candidates per pass
    if b * n > per_pass:  # a pass of one candidate per start: the same rollout, cut along B * N
        starts = start[:, None].expand(b, n, start.shape[-1]).reshape(b * n, start.shape[-1])  # [B*N, S]
        single = actions.reshape(b * n, 1, *actions.shape[2:])  # [B*N, 1, H, A]
        passes = [
            particle_rollout(
                model,
                starts[i : i + per_pass],
                single[i : i + per_pass],
                particles,
                propagation,
                reward_fn,
                done_fn,
                generator,
            )
            for i in range(0, b * n, per_pass)
        ]

        def joined(field):  # [B*N, 1, ...] passes -> [B, N, ...]
            return torch.cat([getattr(out, field) for out in passes]).reshape(
                b, n, *getattr(passes[0], field).shape[2:]
            )

        return Rollout(**{field: joined(field) for field in ("rewards", "reward_std", "final_states", "final_alive")})

    state = start[:, None, None, :].expand(b, n, particles, start.shape[-1])  # [B, N, P, S]
    alive = torch.ones(b, n, particles, dtype=torch.bool, device=start.device)  # [B, N, P]
    rewards = []
    for h in range(horizon):
        act = actions[:, :, None, h].expand(b, n, particles, actions.shape[-1])  # [B, N, P, A]
        if propagation == "expectation":
            mean, _ = model(torch.cat([state, act], -1).reshape(-1, state.shape[-1] + act.shape[-1]))
            out = mean.mean(0) * model.out_std + model.out_mean  # [M, O]
            nxt = state + out[:, : model.state_dim].reshape(state.shape)
            learned = out[:, -1].reshape(b, n, particles) if model.learn_reward else None
        else:
            if propagation == "ts1":  # a random member per particle and step: shuffle particles within candidates
                draw = torch.rand(b, n, particles, generator=generator, device=state.device)
                perm = torch.argsort(draw, -1)  # [B, N, P]
                state = state.gather(2, perm[..., None].expand_as(state))
                alive = alive.gather(2, perm)  # an ended episode stays with its particle
            nxt, learned = _members_step(model, state, act, generator)
        r = learned
        if reward_fn is not None:
            r = reward_fn(state.flatten(0, 2), act.flatten(0, 2), nxt.flatten(0, 2)).reshape(b, n, particles)
        if done_fn is not None:
            r = r * alive
            alive = alive & ~done_fn(nxt.reshape(-1, nxt.shape[-1])).reshape(b, n, particles)
        rewards.append(r)
        state = nxt
    rewards = torch.stack(rewards, -1)  # [B, N, P, H]
    weight = alive.float()[..., None]  # [B, N, P, 1]
    live = weight.sum(2)  # [B, N, 1] particles still alive
    final = torch.where(live > 0, (state * weight).sum(2) / live.clamp(min=1), state.mean(2))  # [B, N, S]
    return Rollout(
        rewards=rewards.mean(2),
        reward_std=rewards.std(2, unbiased=False),
        final_states=final,  # mean over the particles still alive; over all of them where none is
        final_alive=live[..., 0] / particles,
    )


def _members_step(model: Ensemble, state: torch.Tensor, act: torch.Tensor, generator):
    """Particle p of every candidate steps with member p mod K: [B, N, P, S] -> [B, N, P, S], rewards [B, N, P]."""
    b, n, p, _ = state.shape
    k = model.members

    def group(x):  # [B, N, P, D] -> [K, B * N * P / K, D], member-major
        return x.reshape(b, n, p // k, k, x.shape[-1]).permute(3, 0, 1, 2, 4).reshape(k, -1, x.shape[-1])

    def ungroup(x):  # inverse of group
        return x.reshape(k, b, n, p // k, x.shape[-1]).permute(1, 2, 3, 0, 4).reshape(b, n, p, x.shape[-1])

    nxt, reward = model.step_members(group(state), group(act), sample=True, generator=generator)
    return ungroup(nxt), (ungroup(reward[..., None])[..., 0] if reward is not None else None)
