"""The forecast roll-up: each group's pipeline by forecast category against its quota.

`GET /v1/forecast/rollup?period=&group_by=rep|team|manager|region[&as_of=]`. Semantics:

- T is `as_of`, or now. Deals are those valid at T (`forecast.deal_versions` with
  `valid_from <= T < coalesce(valid_to, infinity)`; the live answer reads `forecast.deals`),
  not deleted, with a close date inside the period.
- A won deal adds its amount to `closed_won`; a lost one adds to nothing. An open deal adds
  to its category (its own `forecast_category`, else its stage's in today's configuration)
  and to `weighted` (amount x the stage's probability / 100) and `open_count`. An open
  deal whose category cannot be found (stage or pipeline not configured, no category of
  its own) adds to `unmapped` and `unmapped_count` instead, never dropped. An open deal
  with its own category but an unknown stage weighs 0.
- Groups: `rep` is the deal's owner; `team`, `manager`, `region` are the owner's team, that
  team's manager and region on the hierarchy day, min(T's date, the period's last day). So
  a rep who moved team keeps past periods with the old team. No assignment: group null.
- Quota: the quotas whose dates lie inside the period, of the rep (`rep`), the team
  (`team`), or summed over the teams of the manager or region on the hierarchy day; as of
  T, only quotas whose event is at or before T.
- Each row is one (group, currency): two currencies are never added.
- Beside the numbers, in the row's currency: the latest call recorded at or before T (rep
  rows) and the latest adjustment per category of the rep or team (rep and team rows).

The sums come from one SQL statement (`repository.group_sums`); the derived figures from
`figures` (pure), assembled with the calls and adjustments in `rows` (pure).
"""
