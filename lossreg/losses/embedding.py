"""Embedding and ranking losses: margins between pairs and triplets of representations."""
