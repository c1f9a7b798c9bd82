"""The relay protocol core: frame models, errors, permissions, coordinates. No I/O."""
