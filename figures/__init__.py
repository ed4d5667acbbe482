"""One plotting function per figure, and the figure registry.

Figures arrange tables and results computed elsewhere; they compute nothing themselves.
"""
__all__: list[str] = []
