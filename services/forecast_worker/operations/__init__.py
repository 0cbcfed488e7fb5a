"""What an operator needs to run the worker: its dead letters, listed and replayed."""
