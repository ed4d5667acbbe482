"""Evidence and finding rules, one module per area.

``measure_<area>(store, *, budget, seed, ...)`` runs the area's analyses once into a frozen
evidence object (small tables and results, never request rows); ``<area>_findings(evidence) ->
list[Finding]`` turns it into findings. Neither raises for a trace lacking columns: the findings
are then not applicable, with the reason. The area objects of :mod:`servelab.reports.areas` are
the entry point that calls them. These modules never import matplotlib."""
__all__: list[str] = []
