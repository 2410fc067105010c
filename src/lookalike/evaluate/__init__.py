"""Measuring retrieval: edits for copy detection, metrics, evaluation runs."""
