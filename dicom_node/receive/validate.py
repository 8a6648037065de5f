"""Checks an instance must pass before we acknowledge it, as a table of small functions.

Each check takes the parsed dataset and the C-STORE request's facts (``Received``) and raises a
``dicom_node.receive.errors`` error naming the attribute; none of them decodes pixel data.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.tag import BaseTag
from pydicom.uid import UID

from dicom_node.receive.errors import (
    CannotUnderstand,
    InvalidUID,
    MissingAttribute,
    PixelDataInconsistent,
    ReceiveError,
    SequenceTooDeep,
    UIDMismatch,
    UnparseableDataset,
)

UID_MAX_CHARS = 64  # PS3.5 §9.1
# PS3.5 §9.1: components of digits separated by ".", no leading zero unless the component is "0".
UID_PATTERN = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")
IDENTITY_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
IMAGE_PIXEL_TYPE1 = ("Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated")
UNDEFINED_LENGTH = 0xFFFFFFFF
BITS_ALLOCATED_VALID = frozenset({1, 8, 16, 32, 64})


@dataclass(frozen=True)
class Received:
    """What the C-STORE request said, beside the dataset."""

    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    transfer_syntax_uid: str
    max_sequence_depth: int


def parse(encoded: bytes) -> Dataset:
    """The dataset from ``event.encoded_dataset()`` bytes (file meta included). Only sequences
    are expanded here (to measure their nesting); other values stay raw until someone reads them,
    and a stream that does not fill exactly with elements is garbage or truncated."""
    try:
        ds = dcmread(BytesIO(encoded))
        complete = ds.file_meta.TransferSyntaxUID.is_deflated or ends_at(ds, len(encoded))
        sequence_depth(ds)
    except Exception as exc:  # pydicom raises many types on garbage; none may escape as a crash
        raise UnparseableDataset(f"dataset cannot be parsed ({type(exc).__name__})") from None
    if not complete:
        raise UnparseableDataset("dataset cannot be parsed (truncated or garbage)")
    return ds


def ends_at(ds: Dataset, total: int) -> bool:
    """Whether the top-level elements, as read (before conversion), fill the stream exactly.

    pydicom stops quietly at the end of a short stream; a value shorter than its length, or a
    last element that ends before the stream does, means truncation or garbage."""
    end = 0
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement):
            continue
        read = len(raw.value or b"")
        if raw.length == UNDEFINED_LENGTH:
            end = raw.value_tell + read + 8  # the items, then the sequence delimiter
        elif read != raw.length:
            return False
        else:
            end = raw.value_tell + raw.length
    return end == total


def sequence_depth(ds: Dataset) -> int:
    """The deepest sequence nesting: 0 for a flat dataset, 1 for a sequence of flat items, …
    Converts only the sequences: converting every element costs more than the rest of a C-STORE."""
    deepest = 0
    for tag in ds.keys():
        if _vr(ds, tag) == "SQ":
            deepest = max(deepest, 1 + max((sequence_depth(item) for item in ds[tag].value), default=0))
    return deepest


def _vr(ds: Dataset, tag: BaseTag) -> str | None:
    """The VR without converting the element (implicit VR streams leave it to the dictionary)."""
    vr = ds.get_item(tag).VR
    if vr is None:
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return None
    return vr


def check_identity_uids(ds: Dataset, rq: Received) -> None:
    for keyword in IDENTITY_UIDS:
        if keyword not in ds:
            raise MissingAttribute(f"{keyword} missing", keyword)
        check_uid(str(ds[keyword].value or ""), keyword)


def check_uid(value: str, keyword: str) -> None:
    if not value:
        raise InvalidUID(f"{keyword} empty", keyword)
    if len(value) > UID_MAX_CHARS:
        raise InvalidUID(f"{keyword} longer than 64 characters", keyword)
    if not UID_PATTERN.fullmatch(value):
        raise InvalidUID(f"{keyword} not a valid UID (PS3.5 9.1)", keyword)


def check_command_uids(ds: Dataset, rq: Received) -> None:
    """The command's Affected SOP Class/Instance UIDs name the dataset we got (PS3.4 B.2.3)."""
    if rq.affected_sop_class_uid != ds.SOPClassUID:
        raise UIDMismatch("AffectedSOPClassUID differs from SOPClassUID", "SOPClassUID")
    if rq.affected_sop_instance_uid != ds.SOPInstanceUID:
        raise UIDMismatch("AffectedSOPInstanceUID differs from SOPInstanceUID", "SOPInstanceUID")


def check_sequence_depth(ds: Dataset, rq: Received) -> None:
    if sequence_depth(ds) > rq.max_sequence_depth:
        raise SequenceTooDeep(f"sequences nested deeper than {rq.max_sequence_depth}")


def check_image_pixel_module(ds: Dataset, rq: Received) -> None:
    """Every class we accept is an image: Pixel Data and its Type 1 description must be there."""
    if "PixelData" not in ds:
        raise MissingAttribute("PixelData missing", "PixelData")
    for keyword in IMAGE_PIXEL_TYPE1:
        if ds.get(keyword) in (None, ""):
            raise MissingAttribute(f"{keyword} missing", keyword)
    if ds.BitsAllocated not in BITS_ALLOCATED_VALID:
        raise PixelDataInconsistent("BitsAllocated not 1, 8, 16, 32 or 64", "BitsAllocated")
    if int(ds.get("BitsStored") or ds.BitsAllocated) > ds.BitsAllocated:
        raise PixelDataInconsistent("BitsStored greater than BitsAllocated", "BitsStored")


def check_pixel_data_length(ds: Dataset, rq: Received) -> None:
    """Native (uncompressed) Pixel Data holds exactly the frames its description promises."""
    if UID(rq.transfer_syntax_uid).is_encapsulated:
        return
    expected = expected_native_bytes(ds)
    actual = len(ds.PixelData)
    if actual not in (expected, expected + (expected % 2)):  # odd lengths get one pad byte
        raise PixelDataInconsistent(
            f"PixelData {actual} bytes, header implies {expected}", "PixelData"
        )


def expected_native_bytes(ds: Dataset) -> int:
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.SamplesPerPixel)
    if ds.PhotometricInterpretation == "YBR_FULL_422":
        samples = 2  # two samples per pixel after 4:2:2 chroma subsampling (PS3.3 C.7.6.3.1.2)
    bits = ds.Rows * ds.Columns * frames * samples * int(ds.BitsAllocated)
    return (bits + 7) // 8


def check_encapsulated_pixel_data(ds: Dataset, rq: Received) -> None:
    """Encapsulated Pixel Data is a well-formed item sequence with at least one fragment."""
    if not UID(rq.transfer_syntax_uid).is_encapsulated:
        return
    try:
        fragments = sum(1 for fragment in generate_fragments(ds.PixelData) if fragment)
    except Exception:
        fragments = 0
    if fragments == 0:
        raise PixelDataInconsistent("encapsulated PixelData has no fragments", "PixelData")


CHECKS: tuple[Callable[[Dataset, Received], None], ...] = (
    check_identity_uids,
    check_command_uids,
    check_sequence_depth,
    check_image_pixel_module,
    check_pixel_data_length,
    check_encapsulated_pixel_data,
)


def validate(ds: Dataset, rq: Received) -> None:
    """Run every check in order; the first failure raises. A check that trips over a malformed
    value (e.g. Rows as text) is a dataset we cannot understand, not our fault (0xA700)."""
    for check in CHECKS:
        try:
            check(ds, rq)
        except ReceiveError:
            raise
        except Exception as exc:
            raise CannotUnderstand(f"{check.__name__[6:]}: {type(exc).__name__}") from None
