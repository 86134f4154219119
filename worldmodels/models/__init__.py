"""World models: rssm.py (Dreamer)."""
