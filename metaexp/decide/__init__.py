"""Deciding what a measured candidate means: objectives, the one decision, populations, selection."""
