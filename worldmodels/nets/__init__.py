"""Building blocks shared by models and agents."""
