"""Sequence losses: alignments of unsegmented sequences (CTC)."""
