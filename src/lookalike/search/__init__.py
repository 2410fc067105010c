"""Queries to vectors, vectors to ranked hits."""
