"""``wavegen train``."""
