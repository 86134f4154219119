"""LightZero's compiled (C++) MuZero tree with its CartPole MLP network: simulations per second.

Run with LightZero's own venv, never the project's (see benchmarks/README.md):
    anchors/lz/bin/python benchmarks/anchors/lightzero_search_speed.py --roots 16 64 --simulations 50
It mirrors LightZero's MuZero collect step (policy/muzero.py _forward_collect): initial inference, root
preparation with Dirichlet noise, then MuZeroMCTSCtree.search; one torch thread, like our search.
"""

import argparse
import time

import numpy as np
import torch
from easydict import EasyDict
from lzero.mcts.tree_search.mcts_ctree import MuZeroMCTSCtree
from lzero.model.muzero_model_mlp import MuZeroModelMLP
from lzero.policy import InverseScalarTransform, mz_network_output_unpack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--simulations", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    # zoo/classic_control/cartpole/config/cartpole_muzero_config.py
    model = MuZeroModelMLP(observation_shape=4, action_space_size=2, latent_state_dim=128,
                           self_supervised_learning_loss=True, discrete_action_encoding_type="one_hot", norm_type="BN")
    model.eval()
    cfg = EasyDict(dict(num_simulations=args.simulations, discount_factor=0.997, device="cpu", root_dirichlet_alpha=0.25,
                        root_noise_weight=0.25, pb_c_base=19652, pb_c_init=1.25, value_delta_max=0.01,
                        env_type="not_board_games", model=dict(support_scale=300, categorical_distribution=True)))
    mcts = MuZeroMCTSCtree(cfg)
    to_value = InverseScalarTransform(300, "cpu", True)
    for roots_n in args.roots:
        obs = torch.randn(roots_n, 4)

        def decide():
            with torch.no_grad():
                out = model.initial_inference(obs)
                latent, reward, value, logits = mz_network_output_unpack(out)
                to_value(value)
                latent, logits = latent.numpy(), logits.numpy().tolist()
                legal = [[0, 1] for _ in range(roots_n)]
                noises = [np.random.dirichlet([0.25] * 2).astype(np.float32).tolist() for _ in range(roots_n)]
                roots = MuZeroMCTSCtree.roots(roots_n, legal)
                roots.prepare(0.25, noises, [0.0] * roots_n, logits, [-1] * roots_n)
                mcts.search(roots, model, latent, [-1] * roots_n)
                return roots.get_distributions()

        decide()
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            decide()
            times.append(time.perf_counter() - start)
        rate = roots_n * args.simulations / float(np.median(times))
        print(f"lightzero ctree: {rate:,.0f} simulations/s ({args.simulations} simulations x {roots_n} roots, "
              f"median of {args.repeats})")


if __name__ == "__main__":
    main()
