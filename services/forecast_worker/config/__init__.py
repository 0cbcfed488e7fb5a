"""Forecast configuration: pipelines, their stages, and the fiscal calendar's start month.

One document (`schemas.ForecastConfig`), replaced whole through the API or
`salesops forecast config load`, stored as rows, and read by the roll-ups through the pure
`stages.StageTable`. Its probabilities and categories are applied when a forecast is asked
for, never folded into the deal history. Two things reach the history: its names gate it
(once pipelines are configured, a deal event naming an unknown stage or pipeline waits in
the dead letters, `deals.stage_check`, and storing a document that knows it replays it,
`replays`), and its stages' statuses decide whether a deal is open, won or lost
(`deals.projection.StageRules`), so storing a document that changes one rebuilds the
deals it restates (`restate`).
"""
