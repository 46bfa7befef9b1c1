"""What a run writes and reads back: the versioned row schema, the crash-tolerant JSONL reader,
results folders, the model manifest and the run's log. Imports nothing else of the project."""
