"""The pipeline waterfall: how a period's open pipeline moved from one instant to another."""
