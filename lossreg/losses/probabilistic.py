"""Probabilistic losses: divergences and negative log-likelihoods of distributions."""
