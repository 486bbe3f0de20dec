"""``wavegen synthesize``."""
