import pytest

from loadgen.config.units import format_duration, parse_count, parse_duration_s, parse_size_bytes


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("250ms", 0.25),
        ("1.5m", 90.0),
        ("2h", 7200.0),
        ("100us", 1e-4),
        (3, 3.0),
        ("1m30s", 90.0),
        ("1h 2m 3.5s", 3723.5),
        ("1s500ms", 1.5),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "size"),
    [("64B", 64), ("64KiB", 65536), ("1KB", 1000), ("1.5MiB", 1572864), (512, 512), ("7", 7)],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size_bytes(text) == size


@pytest.mark.parametrize(("text", "count"), [("10k", 10_000), (100, 100), ("1.5k", 1500)])
def test_counts(text: object, count: int) -> None:
    assert parse_count(text) == count


@pytest.mark.parametrize(
    ("parser", "bad", "named"),
    [
        (parse_duration_s, "5 parsecs", "ms, s, m, h"),
        (parse_duration_s, True, "duration"),
        (parse_size_bytes, "64 bits", "KiB"),
        (parse_size_bytes, "0.5B", "whole number"),
        (parse_count, "lots", "10k"),
    ],
)
def test_bad_values_name_the_units(parser: object, bad: object, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parser(bad)  # type: ignore[operator]


def test_format_duration() -> None:
    assert [format_duration(s) for s in (0.25, 5, 120)] == ["250ms", "5s", "2m"]


@pytest.mark.parametrize("written", [10, 2.5, "10", " 7 "])
def test_a_written_duration_needs_its_unit(written: object) -> None:
    with pytest.raises(ValueError, match=r"needs a unit: write [\d.]+s or [\d.]+ms"):
        parse_duration_s(written, unit_required=True)


@pytest.mark.parametrize("zero", [0, 0.0, "0"])
def test_zero_needs_no_unit(zero: object) -> None:
    assert parse_duration_s(zero, unit_required=True) == 0


@pytest.mark.parametrize("bad", ["1m30", "m30s", "1x", "1s-2s"])
def test_compound_durations_are_whole_parts(bad: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration_s(bad)
