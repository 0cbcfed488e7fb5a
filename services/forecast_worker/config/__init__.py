"""Forecast configuration: pipelines, their stages, and the fiscal calendar's start month.

One document (`schemas.ForecastConfig`), replaced whole through the API or
`salesops forecast config load`, stored as rows, and read by the roll-ups through the pure
`stages.StageTable`. It is applied when a forecast is asked for, never folded into the deal
history, so changing it restates nothing and needs no recompute.
"""
