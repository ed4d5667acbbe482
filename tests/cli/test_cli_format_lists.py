"""`servelab ingest --format` (and `report --format`) offer exactly the adapters the library registers."""
from servelab.analysis.ingest.core import FORMATS
from servelab.commands.ingest import _FORMATS


def test_cli_formats_are_the_library_formats():
    assert set(_FORMATS) == set(FORMATS)


def test_report_offers_the_ingest_formats():
    from servelab.commands.report import TRACE_FORMATS

    assert TRACE_FORMATS == _FORMATS
