"""``lookalike serve``: a REST API and a one-page web app over :class:`lookalike.Index`."""
