"""``wavegen preprocess``."""
