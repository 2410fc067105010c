"""Presenting the library to people: the command line and the web app."""
