"""The forecast roll-up: each group's pipeline by forecast category against its quota."""
