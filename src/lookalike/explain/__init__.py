"""See what the CNN sees: why two images matched (:func:`explain_match`), what each layer
makes of an image (:func:`layer_views`), and the course's worked examples
(:func:`course_examples`), all computed by the project's own networks and layers."""

from lookalike.explain.course import course_examples
from lookalike.explain.layers import LayerView, LayerViews, layer_views
from lookalike.explain.similarity import Explanation, explain_match

__all__ = [
    "Explanation",
    "LayerView",
    "LayerViews",
    "course_examples",
    "explain_match",
    "layer_views",
]
