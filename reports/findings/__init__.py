"""Finding builders, one module per area: each offers ``<area>_findings(...) -> list[Finding]``
that never raises for a trace lacking columns (it returns not-applicable findings instead).
These modules never import matplotlib."""
__all__: list[str] = []
