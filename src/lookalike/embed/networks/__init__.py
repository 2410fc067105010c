"""Network definitions, written here because torchvision does not import beside our torch."""
