"""Command-line entry points (scripts/*.py and the wm-* console scripts call these)."""
