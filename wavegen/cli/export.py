"""``wavegen export``."""
