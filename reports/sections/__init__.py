"""Report sections, one module per area, each with ``build_section(store, *, quick=False, seed=0)``."""
__all__: list[str] = []
