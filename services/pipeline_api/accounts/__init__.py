"""Account merges: remembered aliases, so a merged account's deals land on the survivor."""
