"""Evaluation metrics that are not a mean of per-example values (F1, BLEU, edit distance)."""
