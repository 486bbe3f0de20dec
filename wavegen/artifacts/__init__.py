"""What wavegen writes to disk and reads back: the work dir (feature cache), checkpoints,
exported models and the bundled recipes."""
