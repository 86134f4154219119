"""Batched Monte-Carlo tree search over a learned model (MuZero), for R trees at once.

Dimension letters: R roots (one tree each), S nodes per tree (num_simulations + 1), A actions.

The trees are arrays, not node objects. Simulation i adds node i + 1 to every tree, so each simulation is:
descend all R trees in lock-step (one numpy step per tree level), one batched ``recurrent_fn`` call for the
R new leaves, and a backup along the R paths (one numpy step per level). There is no Python loop over roots.

The selection rule is a policy object over that shared loop (as mctx splits muzero_policy and
gumbel_muzero_policy): its constructor prepares the root, ``select`` names every node's in-tree choice and
the root's action for one simulation, ``decide`` turns the root's statistics into the action and policy target.
- PUCT: MuZero's pUCT with min-max normalised Q values (bounds per tree, over every Q seen in it) and
  Dirichlet noise on the root prior; acts by visit counts (temperature), policy target = visit distribution.
- Gumbel: Gumbel MuZero (Danihelka et al., 2022). At the root, Gumbel-top-k sampling of m actions and
  sequential halving between them; inside the tree, the deterministic rule argmax pi'(a) - N(a) / (1 + sum N)
  with pi' = softmax(logits + sigma(completed Q)). Policy target = pi' at the root, which stays a sound
  improvement of the prior even with few simulations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

UNEXPANDED = -1


@dataclass
class MCTSConfig:
    num_simulations: int = 50
    discount: float = 0.997
    method: str = "gumbel"
    """'gumbel' (sequential halving at the root) or 'puct' (MuZero's pUCT)."""
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    dirichlet_alpha: float = 0.25
    dirichlet_fraction: float = 0.25
    max_considered: int = 16
    """Gumbel: actions sampled at the root (m), halved until one is left."""
    c_visit: float = 50.0
    c_scale: float = 0.1


class Inference(NamedTuple):
    """One batched network call, already decoded to scalars."""

    reward: np.ndarray  # [R] reward on the edge into the state (0 for a root)
    value: np.ndarray  # [R]
    logits: np.ndarray  # [R, A] policy logits
    embedding: torch.Tensor  # [R, ...] latent state


class SearchResult(NamedTuple):
    action: np.ndarray  # [R] int64, the action to play
    policy: np.ndarray  # [R, A] the policy target (visit distribution or Gumbel's improved policy)
    value: np.ndarray  # [R] search value of the root
    visits: np.ndarray  # [R, A] root children's visit counts
    qvalues: np.ndarray  # [R, A] root children's Q values (0 where unvisited)


RecurrentFn = Callable[[torch.Tensor, np.ndarray], Inference]


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def considered_visit_sequence(max_considered: int, num_simulations: int) -> np.ndarray:
    """Sequential halving as a schedule: entry i is the visit count the root action chosen at simulation i
    must have. Each phase gives every remaining action the same number of visits, then halves them (keeping
    at least 2); the budget is spread over about log2(m) phases.

    m=4, 8 simulations -> [0 0 0 0 1 1 2 2]: 4 actions once, then the best 2 twice each.
    """
    if max_considered <= 1:
        return np.arange(num_simulations)
    phases = max(1, math.ceil(math.log2(max_considered)))
    sequence: list[int] = []
    considered, visits = max_considered, 0
    while len(sequence) < num_simulations:
        rounds = max(1, num_simulations // (phases * considered))
        for _ in range(rounds):
            sequence.extend([visits] * considered)
            visits += 1
        considered = max(2, considered // 2)
    return np.asarray(sequence[:num_simulations], np.int64)


class Tree:
    """Statistics of R trees with S node slots each (plus one scratch slot); node 0 is the root.

    Edge statistics live on the parent ([R, S, A]: visits, value sum and reward of each child), so selection
    reads one row per tree without chasing child pointers.
    """

    def __init__(self, roots: int, nodes: int, actions: int, embedding: torch.Tensor, discount: float):
        self.ar = np.arange(roots)
        self.discount = discount
        steps = np.arange(nodes)
        self.powers = np.triu(discount ** np.maximum(steps[None] - steps[:, None], 0))  # [S, S] discount^(j-l), j >= l
        self.scratch = nodes  # index of the slot that absorbs masked writes
        slots = nodes + 1
        self.visits = np.zeros((roots, slots), np.int64)
        self.value_sum = np.zeros((roots, slots))
        self.raw_value = np.zeros((roots, slots))  # network value estimate at expansion
        self.logits = np.zeros((roots, slots, actions))
        self.prior = np.zeros((roots, slots, actions))  # softmax of logits (pUCT: the root's carries the noise)
        self.children = np.full((roots, slots, actions), UNEXPANDED, np.int64)
        self.child_visits = np.zeros((roots, slots, actions), np.int64)
        self.child_value_sum = np.zeros((roots, slots, actions))
        self.child_reward = np.zeros((roots, slots, actions))
        self.embeddings = embedding.new_zeros((roots, slots) + tuple(embedding.shape[1:]))  # [R, S+1, ...]
        self.q_min = np.full(roots, np.inf)  # pUCT's min-max bounds over the tree's Q values
        self.q_max = np.full(roots, -np.inf)

    def expand(self, node: int, parent: np.ndarray | None, action: np.ndarray | None, out: Inference) -> None:
        """Write the network's output for node slot ``node`` of every tree, below (parent, action) [R]."""
        self.raw_value[:, node] = out.value
        self.logits[:, node] = out.logits
        self.prior[:, node] = softmax(out.logits)
        self.embeddings[:, node] = out.embedding
        if parent is not None:
            self.children[self.ar, parent, action] = node
            self.child_reward[self.ar, parent, action] = out.reward

    def edge_q(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Children of the first n nodes: -> (visits [R, n, A], Q = r + discount * mean value [R, n, A]; the Q of
        an unvisited child is its reward alone, so callers mask it)."""
        visits = self.child_visits[:, :n]
        return visits, self.child_reward[:, :n] + self.discount * self.child_value_sum[:, :n] / np.maximum(visits, 1)

    def backup(
        self, path: np.ndarray, actions: np.ndarray, depth: np.ndarray, leaf: int, value: np.ndarray, track_bounds: bool
    ) -> None:
        """Back the new leaves' values [R] up their paths in one pass over all levels.

        path [D, R]: node at each level above the leaf; actions [D, R]: the action taken there; depth [R]:
        levels in use per tree (deeper entries repeat the last one and are sent to the scratch slot). Each
        tree's path holds distinct nodes, so the scattered additions never collide outside the scratch slot.
        """
        D, discount = len(path), self.discount
        levels = np.arange(D)[:, None]
        live = levels < depth[None]  # [D, R]
        path = np.where(live, path, self.scratch)
        ar = self.ar[None]
        edge = (ar, path, actions)  # the edge taken at each level
        reward = np.where(live, self.child_reward[edge], 0.0)  # [D, R] reward of each taken edge
        # return of the edge taken at level l: sum_{j>=l} discount^(j-l) reward_j + discount^(depth-l) value
        bootstrap = np.where(live, discount ** (depth[None] - levels), 0.0) * value  # [D, R]
        edge_return = self.powers[:D, :D] @ reward + bootstrap  # [D, R]
        child_return = (edge_return - reward) / discount  # [D, R] the return from the child each edge leads to
        self.visits[ar, path] += 1
        self.value_sum[ar, path] += edge_return
        self.child_visits[edge] += 1
        self.child_value_sum[edge] += child_return
        self.visits[:, leaf] = 1
        self.value_sum[:, leaf] = value
        if track_bounds:
            q = self.child_reward[edge] + discount * self.child_value_sum[edge] / self.child_visits[edge]
            self.q_min = np.minimum(self.q_min, np.where(live, q, np.inf).min(0))
            self.q_max = np.maximum(self.q_max, np.where(live, q, -np.inf).max(0))


def completed_q(tree: Tree, cfg: MCTSConfig, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gumbel MuZero's sigma(completed Q) for the children of the first n nodes [R, n, A], and their visits.

    Unvisited children get the mixed value (raw value mixed with the prior-weighted mean of visited Qs);
    the completed Qs are rescaled to [0, 1] among siblings, then sigma(q) = (c_visit + max N) c_scale q.
    """
    visits, q = tree.edge_q(n)
    visited = visits > 0
    total = visits.sum(-1)  # [R, n]
    weight = np.where(visited, tree.prior[:, :n], 0.0)
    weighted_q = (weight * q).sum(-1) / np.maximum(weight.sum(-1), 1e-12)
    mixed = (tree.raw_value[:, :n] + total * weighted_q) / (1.0 + total)  # = raw value when nothing is visited
    completed = np.where(visited, q, mixed[..., None])
    low, high = completed.min(-1, keepdims=True), completed.max(-1, keepdims=True)
    scaled = (completed - low) / np.maximum(high - low, 1e-8)
    return (cfg.c_visit + visits.max(-1, keepdims=True)) * cfg.c_scale * scaled, visits


def puct_scores(tree: Tree, cfg: MCTSConfig, n: int) -> np.ndarray:
    """MuZero's pUCT score of the children of the first n nodes [R, n, A]; Q min-max normalised per tree
    (bounds over every Q seen in it), 0 where unvisited."""
    visits, q = tree.edge_q(n)
    prior = tree.prior[:, :n]
    span = tree.q_max - tree.q_min
    ok = (span > 0)[:, None, None]
    low = np.where(ok, tree.q_min[:, None, None], 0.0)
    normalised = np.where(ok, (q - low) / np.where(ok, span[:, None, None], 1.0), q)
    q_score = np.where(visits > 0, normalised, 0.0)
    parent_visits = tree.visits[:, :n, None].astype(np.float64)  # [R, n, 1]
    c = cfg.pb_c_init + np.log((parent_visits + cfg.pb_c_base + 1) / cfg.pb_c_base)
    return q_score + c * prior * np.sqrt(parent_visits) / (1.0 + visits)


class PUCT:
    """MuZero's pUCT everywhere; Dirichlet noise on the root prior when exploring; acts by visit counts."""

    track_bounds = True  # pUCT normalises Q by every Q seen in the tree

    def __init__(self, tree: Tree, cfg: MCTSConfig, rng: np.random.Generator, explore: bool, temperature: float):
        self.cfg, self.rng, self.explore, self.temperature = cfg, rng, explore, temperature
        roots, actions = tree.prior[:, 0].shape
        if explore:
            noise = rng.dirichlet([cfg.dirichlet_alpha] * actions, size=roots)  # [R, A]
            tree.prior[:, 0] = (1 - cfg.dirichlet_fraction) * tree.prior[:, 0] + cfg.dirichlet_fraction * noise

    def select(self, tree: Tree, sim: int) -> tuple[np.ndarray, np.ndarray]:
        """-> (choice at each expanded node [R, sim + 1], root action [R])."""
        best = puct_scores(tree, self.cfg, sim + 1).argmax(-1)
        return best, best[:, 0]

    def decide(self, tree: Tree, visits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Root visits [R, A] -> (action [R], policy target [R, A]: the visit distribution)."""
        policy = visits / np.maximum(visits.sum(-1, keepdims=True), 1)
        if not (self.explore and self.temperature > 0):
            return visits.argmax(-1), policy
        weights = visits.astype(np.float64) ** (1.0 / self.temperature)
        weights /= weights.sum(-1, keepdims=True)
        return (weights.cumsum(-1) > self.rng.random((len(visits), 1))).argmax(-1), policy


class Gumbel:
    """Gumbel MuZero: sequential halving over Gumbel-sampled root actions, the improved-policy rule inside."""

    track_bounds = False

    def __init__(self, tree: Tree, cfg: MCTSConfig, rng: np.random.Generator, explore: bool, temperature: float):
        self.cfg = cfg
        roots, actions = tree.logits[:, 0].shape
        self.gumbel = rng.gumbel(size=(roots, actions)) if explore else np.zeros((roots, actions))  # [R, A]
        self.schedule = considered_visit_sequence(min(cfg.max_considered, actions), cfg.num_simulations)  # [sims]

    def select(self, tree: Tree, sim: int) -> tuple[np.ndarray, np.ndarray]:
        """-> (choice at each expanded node [R, sim + 1], root action [R])."""
        sigma, visits = completed_q(tree, self.cfg, sim + 1)  # [R, sim+1, A]
        improved = softmax(tree.logits[:, : sim + 1] + sigma) - visits / (1.0 + visits.sum(-1, keepdims=True))
        # sequential halving: only root actions with the visit count the schedule names compete
        at_root = np.where(visits[:, 0] == self.schedule[sim], self.gumbel + tree.logits[:, 0] + sigma[:, 0], -np.inf)
        return improved.argmax(-1), at_root.argmax(-1)

    def decide(self, tree: Tree, visits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Root visits [R, A] -> (the best most-visited action [R], policy target softmax(logits + sigma) [R, A])."""
        logits, sigma = tree.logits[:, 0], completed_q(tree, self.cfg, 1)[0][:, 0]  # [R, A]
        most = visits == visits.max(-1, keepdims=True)
        return np.where(most, self.gumbel + logits + sigma, -np.inf).argmax(-1), softmax(logits + sigma)


POLICIES = {"puct": PUCT, "gumbel": Gumbel}


def simulate(
    tree: Tree, recurrent_fn: RecurrentFn, best: np.ndarray, action: np.ndarray, leaf: int, track_bounds: bool
) -> None:
    """One simulation on every tree: take ``action`` [R] at the root, then each node's choice ``best`` [R, n]
    down to an unexpanded edge, expand node slot ``leaf`` there with one ``recurrent_fn`` call, back up."""
    ar = tree.ar
    node, depth = np.zeros(len(ar), np.int64), np.ones(len(ar), np.int64)  # depth: edges from root to new leaf
    path, taken = [node], [action]
    child = tree.children[ar, node, action]
    active = child != UNEXPANDED
    while active.any():  # a finished tree repeats its last (node, action); backup masks it by depth
        node = np.where(active, child, node)
        action = np.where(active, best[ar, node], action)
        path.append(node)
        taken.append(action)
        depth += active
        child = tree.children[ar, node, action]
        active &= child != UNEXPANDED
    out = recurrent_fn(tree.embeddings[ar, node], action)
    tree.expand(leaf, node, action, out)
    tree.backup(np.stack(path), np.stack(taken), depth, leaf, out.value, track_bounds)


def search(
    root: Inference,
    recurrent_fn: RecurrentFn,
    cfg: MCTSConfig,
    rng: np.random.Generator,
    explore: bool = True,
    temperature: float = 1.0,
) -> SearchResult:
    """Run cfg.num_simulations simulations on R trees with cfg.method's policy; one ``recurrent_fn`` call each.

    Per simulation: score the children of every node of every tree in one vectorised pass (a node's choice
    depends only on its own statistics and the tree's Q bounds), descend by table lookups (a few numpy ops
    per level), expand the R leaves with one network call, back the values up in one pass.
    """
    if cfg.method not in POLICIES:
        raise ValueError(f"mcts method must be 'gumbel' or 'puct', got {cfg.method!r}")
    if not 0.0 < cfg.discount <= 1.0:
        raise ValueError(f"mcts discount must be in (0, 1], got {cfg.discount}")
    roots, actions = root.logits.shape
    tree = Tree(roots, cfg.num_simulations + 1, actions, root.embedding, cfg.discount)
    tree.expand(0, None, None, root)
    tree.visits[:, 0] = 1  # the root's own value counts as its first visit
    tree.value_sum[:, 0] = root.value
    policy = POLICIES[cfg.method](tree, cfg, rng, explore, temperature)
    for sim in range(cfg.num_simulations):
        best, action = policy.select(tree, sim)
        simulate(tree, recurrent_fn, best, action, sim + 1, policy.track_bounds)
    visits, q = (x[:, 0] for x in tree.edge_q(1))  # the root's children [R, A]
    action, target = policy.decide(tree, visits)
    value = tree.value_sum[:, 0] / tree.visits[:, 0]
    return SearchResult(action.astype(np.int64), target, value, visits, np.where(visits > 0, q, 0.0))
