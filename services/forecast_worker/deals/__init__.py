"""The deal projection: every deal now and as of any past instant, folded from its events."""
