"""Deal inspection: open deals that need a look, each with the reasons why."""
