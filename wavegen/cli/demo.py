"""``wavegen demo``."""
