"""Issue 18 item 5: column maps gain value maps (a status column -> ``failed``, a text column's
values -> stored values, other values rejected ``unmapped_<col>``) and length units (characters
kept and labelled, or converted to tokens with a chars-per-token factor); the manifest records both."""
import json

import pytest

from servelab.analysis import ingest
from servelab.analysis.exceptions import ColumnMapError
from servelab.analysis.ingest import load_column_map
from servelab.analysis.ingest.units import LengthUnit, length_unit

_CSV = (
    "ts,chars_in,chars_out,predict_status,route\n"
    "0.5,400,80,SUCCEED,chat\n"
    "1.5,401,81,FAILED,completion\n"
    "2.5,12,2,PENDING,chat\n"
    "3.5,10,3,,chat\n"
    "4.5,10,3, SUCCEED ,other\n"
    "5.5,7,1,FAILED,completion\n"
)
_STATUS = {"column": "predict_status", "true": ["FAILED"], "false": ["SUCCEED"]}
_ROUTE = {"column": "route", "values": {"chat": "conversation", "completion": "api"}}


def _cmap(**extra):
    return {"time": {"column": "ts"},
            "columns": {"input_tokens": "chars_in", "output_tokens": "chars_out", "failed": _STATUS, "service": _ROUTE},
            **extra}


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(_CSV)
    return path


def test_status_and_route_value_maps(tmp_path, src, check_counts):
    store = ingest(src, output=tmp_path / "s", column_map=_cmap())
    rej = check_counts(store, read=6, stored=4, rejected={"unmapped_failed": 1, "unmapped_service": 1})
    assert [(r["row"], r["reason"]) for r in rej] == [(4, "unmapped_failed"), (6, "unmapped_service")]
    assert json.loads(rej[0]["raw"])["predict_status"] == "PENDING"
    got = store.query("SELECT timestamp, failed, service FROM requests ORDER BY request_id").rows()
    # an empty status is unknown (NULL), not unmapped; values are trimmed before mapping
    assert got == [(0.5, False, "conversation"), (1.5, True, "api"), (3.5, None, "conversation"),
                   (5.5, True, "api")]
    maps = store.manifest["extra"]["ingest"]["value_maps"]
    assert maps == {"failed": {"column": "predict_status", "map": {"FAILED": "true", "SUCCEED": "false"}},
                    "service": {"column": "route", "map": {"chat": "conversation", "completion": "api"}}}


def test_value_maps_from_a_toml_file(tmp_path, src):
    toml = tmp_path / "map.toml"
    toml.write_text('[time]\ncolumn = "ts"\n[columns]\ninput_tokens = "chars_in"\noutput_tokens = "chars_out"\n'
                    'failed = {column = "predict_status", true = ["FAILED"], false = ["SUCCEED"]}\n')
    store = ingest(src, output=tmp_path / "s", column_map=toml)
    assert store.manifest["rows"]["rejected"] == {"unmapped_failed": 1}
    assert store.query("SELECT count(*) FROM requests WHERE failed").item() == 2


def test_lengths_default_to_tokens(tmp_path, src):
    store = ingest(src, output=tmp_path / "s", column_map=_cmap())
    unit = length_unit(store.manifest)
    assert (unit.unit, unit.label, unit.converted) == ("tokens", "tokens", False)
    assert store.manifest["lengths"]["unit"] == "tokens"
    assert length_unit({}) == LengthUnit()  # a store written before the entry holds tokens


def test_characters_are_kept_and_labelled(tmp_path, src):
    store = ingest(src, output=tmp_path / "s", column_map=_cmap(lengths={"unit": "characters"}))
    assert store.query("SELECT input_tokens FROM requests ORDER BY request_id").to_series().to_list() == [400, 401, 10, 7]
    unit = length_unit(store.manifest)
    assert (unit.unit, unit.label, unit.converted) == ("characters", "characters", False)
    assert store.manifest["lengths"]["source_unit"] == "characters"
    assert any("stored as characters" in n for n in store.manifest["extra"]["ingest"]["notes"])


def test_characters_converted_with_a_factor(tmp_path, src):
    store = ingest(src, output=tmp_path / "s", column_map=_cmap(lengths={"unit": "characters", "chars_per_token": 4}))
    got = store.query("SELECT input_tokens, output_tokens FROM requests ORDER BY request_id").rows()
    # round(characters / 4), halves away from zero: 10 / 4 = 2.5 -> 3, 7 / 4 = 1.75 -> 2
    assert got == [(100, 20), (100, 20), (3, 1), (2, 0)]
    unit = length_unit(store.manifest)
    assert (unit.unit, unit.source_unit, unit.chars_per_token) == ("tokens", "characters", 4.0)
    assert unit.label == "tokens (from characters / 4)"


def test_conversion_keeps_the_count_checks_on_the_source_values(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text("ts,i,o\n0,10,4\n1,-4,4\n2,10.5,4\n3,x,4\n")
    cmap = {"time": {"column": "ts"}, "columns": {"input_tokens": "i", "output_tokens": "o"},
            "lengths": {"unit": "characters", "chars_per_token": 2.0}}
    store = ingest(path, output=tmp_path / "s", column_map=cmap)
    assert store.manifest["rows"]["rejected"] == {"negative_input_tokens": 1, "non_integer_input_tokens": 1,
                                                  "non_numeric_input_tokens": 1}
    assert store.query("SELECT input_tokens, output_tokens FROM requests").rows() == [(5, 2)]


@pytest.mark.parametrize(("columns", "lengths", "match"), [
    ({"failed": {"column": "s", "true": "FAILED", "maybe": ["X"]}}, None, r"unknown key\(s\) \['maybe'\]"),
    ({"failed": {"true": ["FAILED"]}}, None, r"failed needs column = .*; got None"),
    ({"failed": {"column": "s"}}, None, r"failed lists no values: give true = \[...\]"),
    ({"failed": {"column": "s", "true": ["A"], "false": ["A"]}}, None, r"lists source value\(s\) \['A'\] more than once"),
    ({"failed": {"column": "s", "true": [True]}}, None, r"true must be a list of source values"),
    ({"input_tokens": {"column": "s", "values": {"a": "1"}}}, None, r"value maps are for boolean and text columns"),
    ({"service": {"column": "s", "values": {}}}, None, r"service needs values = "),
    ({"service": {"column": "s", "values": {"a": 3}}}, None, r"values\.a must be a non-empty text; got 3"),
    ({}, {"unit": "words"}, r"\[lengths\] unit must be one of \['tokens', 'characters'\]; got 'words'"),
    ({}, {"unit": "tokens", "chars_per_token": 4}, r"chars_per_token converts characters"),
    ({}, {"unit": "characters", "chars_per_token": 0}, r"chars_per_token must be a positive number; got 0"),
    ({}, {"unit": "characters", "chars_per_token": float("nan")}, r"chars_per_token must be a positive number"),
    ({}, {"units": "characters"}, r"\[lengths\] has unknown key\(s\) \['units'\]"),
])
def test_bad_value_maps_and_units_are_refused(columns, lengths, match):
    cmap = {"time": {"column": "t"}, "columns": {"input_tokens": "i", "output_tokens": "o", **columns}}
    if lengths is not None:
        cmap["lengths"] = lengths
    with pytest.raises(ColumnMapError, match=match):
        load_column_map(cmap)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"source_unit": "words"}, r"source_unit must be one of"),
    ({"source_unit": "tokens", "chars_per_token": 4.0}, r"chars_per_token converts characters"),
    ({"source_unit": "characters", "chars_per_token": -1.0}, r"chars_per_token must be a positive number; got -1.0"),
])
def test_length_unit_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LengthUnit(**kwargs)


def test_lengths_area_says_the_unit(tmp_path, src):
    """The lengths area carries the manifest's unit into its headline and notes (tokens: nothing said)."""
    from servelab.reports.areas import get_area

    area = get_area("lengths")
    chars = area.measure(ingest(src, output=tmp_path / "c", column_map=_cmap(lengths={"unit": "characters"})))
    assert chars.length_unit == "characters"
    assert area.headline(chars)["length unit"] == "characters"
    assert area.notes(chars)[0].startswith("lengths are in characters")
    tokens = area.measure(ingest(src, output=tmp_path / "t", column_map=_cmap()))
    assert tokens.length_unit == "tokens"
    assert "length unit" not in area.headline(tokens)
    assert not any(n.startswith("lengths are in") for n in area.notes(tokens))
