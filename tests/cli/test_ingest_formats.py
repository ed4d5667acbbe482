"""``servelab ingest --format`` offers exactly the adapters the library registers."""
from servelab.analysis.ingest.core import FORMATS
from servelab.commands.ingest import _FORMATS


def test_cli_formats_are_the_library_formats():
    assert set(_FORMATS) == set(FORMATS)
