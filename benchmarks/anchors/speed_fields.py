"""The speed-row fields (worldmodels/analysis/speed_rows.py, kind 'training') of one MBPO side-by-side measurement,
so that `benchmark.py report` tabulates it and gives the ratio to mbrl-lib (mbpo_speed_side_by_side.sh)."""


def speed_fields(env_steps_per_min: float, anchor: str | None = None, skip: int = 0, steps: int = 750) -> dict:
    seconds = 60.0 / env_steps_per_min  # per env step of the whole loop
    window = f"{steps:,} env steps after 5,000" + (f" and {skip:,} more" if skip else "")
    label = "mbpo-inverted-pendulum" + ("-after-first-epoch" if skip else "")
    fields = {
        "kind": "training", "agent": "mbpo", "obs": "state", "precision": "float32", "device": "cpu",
        "setting": f"mbrl-lib's inv_pendulum MBPO settings, {window} (side by side)",
        "label": label, "median_s": seconds, "min_s": seconds, "repeats": 1,
    }  # fmt: skip
    return fields | ({"anchor": anchor, "task": "gym:InvertedPendulum-v4"} if anchor else {})
