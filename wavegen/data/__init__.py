"""Corpora -> feature cache: the corpus readers and the preprocessor."""
