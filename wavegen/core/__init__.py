"""What every layer stands on: errors, audio files, mu-law, mel features, the recipe schema,
devices, folder locks, signals, process groups and the report page shell."""
