"""Forecast configuration: pipelines, their stages, and the fiscal calendar's start month.

One document (`schemas.ForecastConfig`), replaced whole through the API or
`salesops forecast config load`, stored as rows, and read by the roll-ups through the pure
`stages.StageTable`. It is applied when a forecast is asked for, never folded into the deal
history, so changing it restates nothing and needs no recompute. Only its names gate the
history: once pipelines are configured, a deal event naming an unknown stage or pipeline
waits in the dead letters (`deals.stage_check`), and storing a document that knows it
replays it (`routes.put_config`).
"""
