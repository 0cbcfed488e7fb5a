"""The three services. They never import one another; `cli.py` composes them."""
