"""One module per ``servelab`` sub-command; each parses options and calls the library."""
__all__: list[str] = []
