"""Data for a running stack, sent through its public API like any other client's.

`maven.py` turns the Maven Analytics CRM sample into canonical events, `generator.py`
makes seeded synthetic history (and whole synthetic orgs), `load.py` puts them together
for `salesops dataset load`. Nothing here imports a service: the API is the contract.
"""
