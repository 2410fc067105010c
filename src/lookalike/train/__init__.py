"""Training: metric learning on labelled folders, written out as model directories."""
