"""Tabletop drills: scripted scenarios replayed by the real engine under a virtual clock."""
