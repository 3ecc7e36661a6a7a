"""Small generic helpers: config tree, named instantiation, overlay drawing (no task imports)."""
