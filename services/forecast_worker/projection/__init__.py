"""The top-down projection: what history says this period will close, beside the roll-up."""
