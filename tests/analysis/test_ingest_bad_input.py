"""Every bad-input case of issue 2: each row is stored or rejected with a reason, errors name
what is wrong, and a failed ingest leaves nothing behind."""
import json
from pathlib import Path

import pytest

from servelab.analysis import (
    ColumnMapError,
    EmptyTraceError,
    MissingColumnError,
    StoreExistsError,
    TraceFormatError,
    ingest,
)
from servelab.analysis.ingest import EmptySourceWarning

TEST_DATA = Path(__file__).resolve().parents[1] / "data"  # found from this file, so that the suite collects from any directory

DATA = TEST_DATA / "ingest"


def test_malformed_lines_are_counted_not_lost(tmp_path, check_counts):
    store = ingest(DATA / "bad_malformed_lines.csv", output=tmp_path / "s")
    rej = check_counts(store, read=5, stored=3, rejected={"malformed_line": 2})
    assert [r["row"] for r in rej] == [3, 5]  # 1-based file lines (header is line 1)
    assert json.loads(rej[0]["raw"])["line"] == "2,ChatGPT,10,5"
    assert rej[0]["source"].endswith("bad_malformed_lines.csv")


def test_non_numeric_and_non_integer_tokens(tmp_path, check_counts):
    store = ingest(DATA / "bad_non_numeric_tokens.csv", output=tmp_path / "s")
    rej = check_counts(store, read=5, stored=2, rejected={
        "non_numeric_input_tokens": 1, "non_numeric_output_tokens": 1, "non_integer_input_tokens": 1})
    assert [(r["row"], r["reason"]) for r in rej] == [
        (3, "non_numeric_input_tokens"), (4, "non_numeric_output_tokens"), (5, "non_integer_input_tokens")]
    assert "ten" in rej[0]["raw"]


def test_negative_tokens(tmp_path, check_counts):
    store = ingest(DATA / "bad_negative_tokens.csv", output=tmp_path / "s")
    rej = check_counts(store, read=4, stored=2, rejected={"negative_input_tokens": 1, "negative_output_tokens": 1})
    assert [r["row"] for r in rej] == [3, 4]
    assert json.loads(rej[0]["raw"])["Request tokens"] == -10


def test_nan_missing_and_unparseable_timestamps(tmp_path, check_counts):
    store = ingest(DATA / "bad_timestamps.csv", output=tmp_path / "s")
    rej = check_counts(store, read=6, stored=2, rejected={
        "nan_timestamp": 2, "unparseable_timestamp": 1, "missing_timestamp": 1})
    assert [(r["row"], r["reason"]) for r in rej] == [
        (3, "nan_timestamp"), (4, "unparseable_timestamp"), (5, "missing_timestamp"), (6, "nan_timestamp")]


def test_unparseable_datetime_azure(tmp_path, check_counts):
    store = ingest(DATA / "bad_azure_timestamp.csv", output=tmp_path / "s")
    rej = check_counts(store, read=3, stored=2, rejected={"unparseable_timestamp": 1})
    assert rej[0]["row"] == 3 and "not a time" in rej[0]["raw"]
    assert store.to_polars()["timestamp"].to_list() == pytest.approx([0.0, 5.0 - 3.97996], abs=1e-6)


def test_unsorted_input_is_sorted_and_counted(tmp_path, check_counts):
    store = ingest(DATA / "bad_unsorted.csv", output=tmp_path / "s")
    check_counts(store, read=5, stored=5, rejected={})
    assert store.manifest["rows"]["unsorted"] == 2  # 3 after 5, 1 after 4
    got = store.to_polars()
    assert got["timestamp"].to_list() == [1.0, 3.0, 4.0, 5.0, 9.0]
    assert got["input_tokens"].to_list() == [21, 11, 20, 10, 30]
    assert got["request_id"].to_list() == [0, 1, 2, 3, 4]


def test_exact_duplicates_are_kept_and_counted(tmp_path, check_counts):
    store = ingest(DATA / "bad_duplicates.csv", output=tmp_path / "s")
    check_counts(store, read=6, stored=6, rejected={})
    assert store.manifest["rows"]["duplicates"] == 3  # 3 equal rows (2 extra) + 2 equal rows (1 extra)


def test_jsonl_bad_lines(tmp_path, check_counts):
    store = ingest(DATA / "bad_mooncake.jsonl", output=tmp_path / "s")
    rej = check_counts(store, read=8, stored=2, rejected={
        "malformed_line": 2, "negative_input_tokens": 1, "unparseable_timestamp": 1,
        "malformed_prefix_blocks": 1, "non_integer_input_tokens": 1})
    assert [r["row"] for r in rej] == [2, 3, 5, 6, 7, 8]  # line 4 is blank: skipped, not a row
    assert json.loads(rej[0]["raw"])["line"].startswith('{"timestamp": 1000')


@pytest.mark.parametrize("name", ["bad_empty.csv", "bad_header_only.csv"])
def test_empty_files(name, tmp_path):
    with pytest.raises(EmptyTraceError, match="no data rows"):
        ingest(DATA / name, output=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_empty_file_among_others_warns(tmp_path, raw_traces):
    with pytest.warns(EmptySourceWarning, match="holds no data rows"):
        store = ingest([raw_traces / "burstgpt/BurstGPT_1_head54.csv", DATA / "bad_header_only.csv"],
                       output=tmp_path / "s")
    assert store.n_requests == 54
    assert store.manifest["sources"][1]["empty"] is True


def test_every_row_rejected_is_an_error(tmp_path):
    path = tmp_path / "all_bad.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\nx,ChatGPT,1,1,2,API log\n")
    with pytest.raises(EmptyTraceError, match="every row was rejected.*unparseable_timestamp: 1"):
        ingest(path, output=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_missing_required_column(tmp_path):
    with pytest.raises(MissingColumnError, match="required column 'Response tokens' is missing.*columns found: 'Timestamp'"):
        ingest(DATA / "bad_missing_column.csv", fmt="burstgpt", output=tmp_path / "s")
    with pytest.raises(TraceFormatError, match="cannot tell the format.*Response tokens"):
        ingest(DATA / "bad_missing_column.csv", output=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_wrong_format_suggests_the_sniffed_one(tmp_path, raw_traces):
    azure = raw_traces / "azure_2023/AzureLLMInferenceTrace_code.csv"
    with pytest.raises(TraceFormatError, match="not a 'burstgpt' trace.*looks like 'azure': use --format azure"):
        ingest(azure, fmt="burstgpt", output=tmp_path / "s")
    with pytest.raises(TraceFormatError, match="it is a jsonl file, not csv.*use --format mooncake"):
        ingest(raw_traces / "mooncake/synthetic_trace.jsonl", fmt="azure", output=tmp_path / "s")
    with pytest.raises(TraceFormatError, match="format must be one of"):
        ingest(azure, fmt="splitwise", output=tmp_path / "s")


def test_column_map_naming_a_missing_column(tmp_path):
    with pytest.raises(ColumnMapError, match=r"names column\(s\) \['user'\].*columns found: 'created_at'"):
        ingest(DATA / "generic.csv", output=tmp_path / "s", column_map=DATA / "generic_bad_map.toml")


@pytest.mark.parametrize(
    ("cmap", "match"),
    [
        ({"columns": {"input_tokens": "prompt_tokens"}}, r"needs \[time\] column"),
        ({"time": {"column": "created_at", "unit": "fortnight"}}, "unit must be one of"),
        ({"time": {"column": "created_at", "format": "auto", "unit": "s"}}, "not both"),
        ({"time": {"column": "created_at"}, "columns": {"tokens_in": "prompt_tokens"}}, r"unknown key\(s\) \['tokens_in'\]"),
        ({"time": {"column": "created_at", "timezone": "Mars/Olympus"}}, "not an IANA zone"),
        ({"time": {"column": "created_at"}, "colums": {}}, r"unknown key\(s\) \['colums'\]"),
    ],
)
def test_invalid_column_maps(cmap, match, tmp_path):
    with pytest.raises(ColumnMapError, match=match):
        ingest(DATA / "generic.csv", output=tmp_path / "s", column_map=cmap)


def test_generic_needs_a_map(tmp_path):
    with pytest.raises(ColumnMapError, match="needs a column map"):
        ingest(DATA / "generic.csv", fmt="generic", output=tmp_path / "s")


def test_existing_store_refused_unless_overwrite(tmp_path, raw_traces):
    src = raw_traces / "burstgpt/BurstGPT_1_head54.csv"
    ingest(src, output=tmp_path / "s")
    with pytest.raises(StoreExistsError, match="already exists; pass overwrite=True"):
        ingest(src, output=tmp_path / "s")
    assert ingest(DATA / "burstgpt_8col.csv", output=tmp_path / "s", overwrite=True).n_requests == 8


def test_failed_ingest_leaves_nothing_and_keeps_old_store(tmp_path, raw_traces):
    ingest(raw_traces / "burstgpt/BurstGPT_1_head54.csv", output=tmp_path / "s")
    with pytest.raises(EmptyTraceError):
        ingest(DATA / "bad_header_only.csv", output=tmp_path / "s", overwrite=True)
    with pytest.raises(TraceFormatError):
        ingest(DATA / "bad_missing_column.csv", output=tmp_path / "t")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    from servelab.analysis import open_store

    assert open_store(tmp_path / "s").n_requests == 54


def test_missing_source_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest(tmp_path / "nope.csv", output=tmp_path / "s")
    with pytest.raises(FileNotFoundError, match="matches no file"):
        ingest(str(tmp_path / "nope_*.csv"), output=tmp_path / "s")


def test_burstgpt_log_type_mapping_and_blank_log_type(tmp_path):
    """Known log types map, others are lower-cased and kept, a blank one rejects the row."""
    from servelab.analysis import ingest

    path = tmp_path / "b.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "1,ChatGPT,5,1,6, Conversation log \n2,ChatGPT,5,1,6,API log\n"
                    "3,ChatGPT,5,1,6,Batch Log\n4,ChatGPT,5,1,6,   \n")
    store = ingest(path, fmt="burstgpt", output=tmp_path / "s")
    assert store.to_polars()["service"].to_list() == ["conversation", "api", "batch log"]
    assert store.manifest["rows"]["rejected"] == {"missing_service": 1}


def test_field_values_only_map_strings():
    from servelab.analysis.ingest.plan import Field

    with pytest.raises(ValueError, match="Field.values maps strings and booleans only; got kind 'count' for 'input_tokens'"):
        Field("input_tokens", '"x"', "count", values=(("1", "2"),))
