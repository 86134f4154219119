"""Analysis of results: benchmark rows -> tables and learning curves."""
