"""Shared parts of the metric-learning trainables (triplet, pair_contrastive, infonce)."""
