"""Formatter plugins: entry-point lookup, caching, helpful errors, built-in round trips."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
from astropy.table import Table

from repo_butler import formatters
from repo_butler.errors import FormatterError
from repo_butler.formatters import available_formatters, get_formatter, register_formatter
from repo_butler.formatters.base import Formatter
from repo_butler.formatters.builtin import (
    FitsArrayFormatter,
    FitsTableFormatter,
    JsonFormatter,
    YamlFormatter,
)


class _Upper(Formatter):
    name: ClassVar[str] = "upper_test"
    extension: ClassVar[str] = ".txt"

    def to_bytes(self, obj: Any) -> bytes:
        return str(obj).upper().encode()

    def from_bytes(self, data: bytes, *, source: str) -> Any:
        return data.decode()


def test_builtins_resolve_through_entry_points_and_are_cached() -> None:
    for name, cls in [
        ("json", JsonFormatter),
        ("yaml", YamlFormatter),
        ("fits_table", FitsTableFormatter),
        ("fits_array", FitsArrayFormatter),
    ]:
        inst = get_formatter(name)
        assert type(inst) is cls and inst.name == name
        assert get_formatter(name) is inst
    assert {"json", "yaml", "fits_table", "fits_array", "exposure"} <= set(available_formatters())


def test_unknown_formatter_lists_available_and_hint() -> None:
    with pytest.raises(FormatterError) as info:
        get_formatter("nosuch")
    message = str(info.value)
    assert "nosuch" in message and "json" in message and "repo_butler.formatters" in message


def test_register_formatter_and_clobber_guard() -> None:
    register_formatter("upper_test", _Upper)
    assert get_formatter("upper_test").to_bytes("ab") == b"AB"
    register_formatter("upper_test", _Upper)  # same class again: fine

    class Other(_Upper):
        pass

    with pytest.raises(ValueError, match="already registered"):
        register_formatter("upper_test", Other)
    register_formatter("upper_test", Other, clobber=True)
    assert type(get_formatter("upper_test")) is Other
    formatters._registered.pop("upper_test")
    formatters._instances.pop("upper_test")


@pytest.mark.parametrize(
    ("name", "obj"),
    [
        ("json", {"b": [1, 2.5, None], "a": "x"}),
        ("yaml", {"nested": {"k": [1, 2]}, "s": "text"}),
    ],
)
def test_document_round_trip(name: str, obj: Any) -> None:
    fmt = get_formatter(name)
    assert fmt.from_bytes(fmt.to_bytes(obj), source="mem") == obj


def test_fits_table_round_trip() -> None:
    fmt = get_formatter("fits_table")
    table = Table({"id": np.arange(5, dtype=np.int64), "flux": np.linspace(0, 1, 5)})
    back = fmt.from_bytes(fmt.to_bytes(table), source="t.fits")
    assert back.colnames == ["id", "flux"]
    np.testing.assert_array_equal(back["id"], table["id"])
    np.testing.assert_allclose(back["flux"], table["flux"], rtol=0, atol=0)
    structured = np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")])
    assert fmt.from_bytes(fmt.to_bytes(structured), source="s")["b"][0] == 2.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int16, np.int32, np.uint8])
def test_fits_array_round_trip_dtypes(dtype: type) -> None:
    fmt = get_formatter("fits_array")
    array = (np.arange(24).reshape(2, 3, 4) % 7).astype(dtype)
    back = fmt.from_bytes(fmt.to_bytes(array), source="a")
    np.testing.assert_array_equal(back, array)
    assert back.dtype == array.dtype
    assert back.dtype.isnative


def _astropy_fits_bytes(array: np.ndarray) -> bytes:
    import io

    from astropy.io import fits

    buf = io.BytesIO()
    fits.PrimaryHDU(array).writeto(buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "array",
    [
        np.random.default_rng(3).normal(size=(37, 53)).astype(np.float32),
        np.random.default_rng(4).normal(size=(3, 5, 7)).astype(">f8"),  # big-endian input
        np.arange(720, dtype=np.int16).reshape(24, 30)[::2, 1::3],  # not contiguous
        np.arange(-50, 50, dtype=np.int32),
        np.arange(64, dtype=np.int64).reshape(8, 8).T,
        np.arange(256, dtype=np.uint8).reshape(16, 16),
        np.array([[np.nan, np.inf], [-np.inf, -0.0]], dtype=np.float32),
        np.arange(6, dtype=np.uint16).reshape(2, 3),  # BZERO-scaled: astropy writes it
        np.zeros((0, 4), dtype=np.float32),
    ],
    ids=["f4", "f8-big-endian", "i2-strided", "i4", "i8-transposed", "u1", "f4-nonfinite",
         "u2-bzero", "empty"],
)  # fmt: skip
def test_fits_array_bytes_identical_to_astropy_writer(array: np.ndarray) -> None:
    data = get_formatter("fits_array").to_bytes(array)
    assert data == _astropy_fits_bytes(array)
    assert len(data) % 2880 == 0


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("json", b'{"unterminated": '),
        ("yaml", b"a: [1, 2\n"),
        ("fits_array", b"SIMPLE  = T" + b" " * 100),
        ("fits_table", b"\x00" * 5000),
    ],
)
def test_corrupt_bytes_raise_formatter_error_naming_source(name: str, data: bytes) -> None:
    with pytest.raises(FormatterError, match="bad-file-uri"):
        get_formatter(name).from_bytes(data, source="bad-file-uri")


def test_truncated_fits_array_is_detected() -> None:
    fmt = get_formatter("fits_array")
    data = fmt.to_bytes(np.ones((100, 100)))
    with pytest.raises(FormatterError):
        fmt.from_bytes(data[: len(data) // 2], source="half")


def test_unwritable_objects() -> None:
    with pytest.raises(FormatterError, match="JSON"):
        get_formatter("json").to_bytes({"x": object()})
    with pytest.raises(FormatterError, match="dtype"):
        get_formatter("fits_array").to_bytes(np.array(["a", "b"]))


def test_codec_formatter_checks_the_type_and_delegates_to_its_functions() -> None:
    from repo_butler.formatters.base import CodecFormatter

    class Pair(CodecFormatter):
        name = "pair"
        extension = ".txt"
        stores = (tuple, list)
        encode = staticmethod(lambda obj: f"{obj[0]},{obj[1]}".encode())
        decode = staticmethod(lambda data, source: tuple(int(v) for v in data.split(b",")))

    fmt = Pair()
    assert fmt.from_bytes(fmt.to_bytes((3, 4)), source="mem://x") == (3, 4)
    with pytest.raises(
        TypeError, match="the pair formatter writes tuple or list objects, got dict"
    ):
        fmt.to_bytes({"a": 1})


@pytest.mark.parametrize("name", ["exposure", "background", "photocalib", "skymap"])
def test_warping_formatters_refuse_other_types_by_name(name: str) -> None:
    from repo_butler.formatters import get_formatter

    with pytest.raises(TypeError, match=f"the {name} formatter writes .* objects, got str"):
        get_formatter(name).to_bytes("not a dataset")
