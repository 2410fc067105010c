"""Finding image files on disk."""
