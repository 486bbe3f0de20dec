"""``wavegen bench``."""
