"""Images to vectors: networks, pooling, preprocessing and the models registry
(``lookalike.embed.registry.create_embedder``). Importing this package loads no PyTorch."""
