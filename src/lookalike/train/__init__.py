"""Training: metric learning on labelled folders, written out as model directories.

Only names live here, so that ``lookalike --help`` lists the choices without loading PyTorch.
"""

# The losses ``--loss`` selects, built by ``lookalike.train.losses.create_loss``.
LOSSES = ("multi_similarity", "proxy_anchor", "mse")
