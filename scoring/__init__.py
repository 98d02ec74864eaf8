"""Trend scoring (signals and scorers) arrives with the scoring work; the app exists so its place is fixed."""
