"""De-identified copies on disk: a study for the worker, a tree of files for a researcher.

File names are ours (``<pseudonymous SOP Instance UID>.dcm``): the original names can hold PHI.
Every copy is written to a temporary name, fsync'ed, renamed, and the directory fsync'ed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from dicom_node.privacy.deidentify import DeidContext, burned_in_risk, deidentify
from dicom_node.privacy.errors import BurnedInRiskError, DeidentificationError, NotDicomError

_MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # DICOMDIR


def deidentify_study(paths: list[Path], out_dir: Path, ctx: DeidContext) -> list[Path]:
    """De-identified copies of one study's files in ``out_dir``; the map is then ``ctx.reid_map()``.

    Checks every file for burned-in risk before writing any (:class:`BurnedInRiskError` names the
    first): the caller quarantines those, this is the last guard that they are never analysed."""
    for path in paths:
        reason = burned_in_risk(read_dicom(path, header_only=True), ctx.options.allow_secondary_capture)
        if reason:
            raise BurnedInRiskError(f"{path}: {reason}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [write_instance(deidentify(read_dicom(path), ctx), out_dir) for path in paths]
    fsync_dir(out_dir)
    return written


def read_dicom(path: Path, header_only: bool = False) -> Dataset:
    """A DICOM Part 10 file, or :class:`NotDicomError` saying why not."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=header_only)
    except InvalidDicomError as exc:
        raise NotDicomError(f"{path}: not a DICOM file (no DICM prefix after the 128-byte preamble)") from exc
    except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as exc:
        raise NotDicomError(f"{path}: unreadable DICOM file ({type(exc).__name__}: {exc})") from exc


def write_instance(ds: Dataset, out_dir: Path) -> Path:
    """Write ``ds`` as ``out_dir/<SOP Instance UID>.dcm``, durably (fsync before rename)."""
    final = out_dir / f"{ds.SOPInstanceUID}.dcm"
    partial = out_dir / f".{ds.SOPInstanceUID}.partial"
    with open(partial, "wb") as handle:
        ds.save_as(handle, enforce_file_format=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, final)
    return final


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class Report:
    """What ``pulmonode deidentify`` did. Holds no PHI beyond the input paths the user gave."""

    written: tuple[Path, ...] = ()
    skipped: tuple[Skipped, ...] = ()  # not DICOM, unreadable, or not de-identifiable
    withheld: tuple[Skipped, ...] = ()  # burned-in PHI risk: not written
    studies: int = 0

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.withheld

    def messages(self) -> list[str]:
        lines = [f"skipped {s.path}: {s.reason}" for s in self.skipped]
        lines += [f"withheld {s.path}: {s.reason} (not written; clean the pixels or exclude it)" for s in self.withheld]
        lines.append(
            f"de-identified {len(self.written)} file(s) of {self.studies} study(ies); "
            f"{len(self.skipped)} skipped, {len(self.withheld)} withheld for burned-in PHI risk"
        )
        return lines


@dataclass
class _Tally:
    written: list[Path] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    withheld: list[Skipped] = field(default_factory=list)


def deidentify_files(inputs: list[Path], out_dir: Path, settings: Any) -> Report:
    """De-identify files and directories (walked recursively) into
    ``out_dir/<study>/<series>/<instance>.dcm`` (pseudonymous UIDs). Files that are not DICOM, or
    cannot be de-identified, are skipped with their reason; burned-in risks are withheld."""
    ctx = DeidContext.from_settings(settings)
    tally = _Tally()
    out_root = Path(out_dir).resolve()
    for path in _walk(inputs, tally):
        if path.resolve().is_relative_to(out_root):
            continue  # our own output, when out_dir lies inside an input directory
        _deidentify_one(path, out_dir, ctx, tally)
    return Report(tuple(tally.written), tuple(tally.skipped), tuple(tally.withheld), len(ctx.study_uids))


def _deidentify_one(path: Path, out_dir: Path, ctx: DeidContext, tally: _Tally) -> None:
    try:
        ds = read_dicom(path)
        _check_composite(ds)
    except (NotDicomError, DeidentificationError) as exc:
        tally.skipped.append(Skipped(path, _reason(exc, path)))
        return
    reason = burned_in_risk(ds, ctx.options.allow_secondary_capture)
    if reason:
        tally.withheld.append(Skipped(path, reason))
        return
    deid = deidentify(ds, ctx)
    series_dir = out_dir / str(deid.StudyInstanceUID) / str(deid.get("SeriesInstanceUID", "no-series"))
    series_dir.mkdir(parents=True, exist_ok=True)
    tally.written.append(write_instance(deid, series_dir))
    fsync_dir(series_dir)


def _check_composite(ds: Dataset) -> None:
    if str(ds.file_meta.get("MediaStorageSOPClassUID", "")) == _MEDIA_STORAGE_DIRECTORY:
        raise DeidentificationError("a DICOMDIR (media directory), not an image: its references name the original files")
    for keyword, tag in (("SOPInstanceUID", "(0008,0018)"), ("StudyInstanceUID", "(0020,000D)")):
        if not str(ds.get(keyword, "") or "").strip():
            raise DeidentificationError(f"{keyword} {tag} is missing or empty")


def _reason(exc: Exception, path: Path) -> str:
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix):] if text.startswith(prefix) else text


def _walk(inputs: Iterable[Path], tally: _Tally) -> Iterator[Path]:
    for root in inputs:
        root = Path(root)
        if root.is_file():
            yield root
        elif root.is_dir():
            yield from sorted(p for p in root.rglob("*") if p.is_file())
        else:
            tally.skipped.append(Skipped(root, "no such file or directory"))
