"""A project uploaded as a zip (``POST /api/builds``), extracted with flora's limits and nothing else.

The archive is tenant input. Before a byte is written, every entry's name is checked (no NUL, no
absolute or drive path, no ``..`` segment, no symbolic link, no duplicate) together with the limits of
flora's build service: 1,000 files, 10 MiB a file, 200 MiB in all, going by the sizes the archive
declares. While extracting, the bytes actually inflated are counted too, so an archive that lies about
its sizes (a zip bomb) stops at the limit instead of filling the disk. Files that steer a package
manager (``.npmrc``, lockfiles, ``pnpm-workspace.yaml``…) are refused, as flora refuses them.

Messages are flora's (``apps/build-service/src/lib/zip.ts``) where flora has one; the checks flora
does not make (symbolic links, duplicates, lying sizes, encrypted entries) say what they refuse.
"""

from __future__ import annotations

import io
import ntpath
import os
import posixpath
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

MAX_COMPRESSED_SIZE = 50 * 1024 * 1024
MAX_FILE_COUNT = 1000
MAX_INDIVIDUAL_FILE_SIZE = 10 * 1024 * 1024
MAX_TOTAL_UNCOMPRESSED_SIZE = 200 * 1024 * 1024
_CHUNK = 64 * 1024

# flora's build service refuses these wherever they are: they configure or pin a package manager
DISALLOWED_FILES = frozenset(
    {
        ".npmrc",
        ".pnpmfile.cjs",
        ".pnpmfile.mjs",
        ".yarnrc",
        ".yarnrc.yml",
        "bun.lock",
        "bun.lockb",
        "npm-shrinkwrap.json",
        "package-lock.json",
        "pnpm-lock.yaml",
        "pnpm-workspace.yaml",
        "pnpm-workspace.yml",
        "yarn.lock",
    }
)
_SEPARATORS = re.compile(r"[\\/]+")


class ProjectZipError(Exception):
    """The archive is refused; the message is for the user."""


@dataclass
class Extracted:
    files: list[str]  # relative paths with forward slashes, in archive order
    total_size: int


def _check_name(name: str) -> None:
    if "\x00" in name:
        raise ProjectZipError(f"Null byte not allowed in path: {name}")
    if posixpath.isabs(name) or ntpath.isabs(name) or re.match(r"^[A-Za-z]:", name):
        raise ProjectZipError(f"Absolute path not allowed: {name}")
    if any(seg == ".." for seg in _SEPARATORS.split(name)):
        raise ProjectZipError(f"Path traversal not allowed: {name}")


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    return info.create_system == 3 and stat.S_ISLNK(info.external_attr >> 16)


def _relative(name: str) -> str:
    return "/".join(seg for seg in _SEPARATORS.split(name) if seg not in ("", "."))


def extract(data: bytes, dest: Path) -> Extracted:
    """Check the archive ``data`` and write its files under ``dest`` (created); raises :class:`ProjectZipError`."""
    if len(data) > MAX_COMPRESSED_SIZE:
        raise ProjectZipError(f"Zip file exceeds maximum compressed size of {MAX_COMPRESSED_SIZE} bytes")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise ProjectZipError(f"project_zip is not a valid zip archive: {exc}") from None

    # every name and declared size first: nothing is written for an archive that is refused
    files: list[tuple[zipfile.ZipInfo, str]] = []
    seen: set[str] = set()
    declared_total = 0
    for info in infos:
        _check_name(info.orig_filename)  # zipfile cuts ``filename`` at a NUL; the name as stored is checked
        name = info.filename
        if name.endswith(("/", "\\")):
            continue
        if _is_symlink(info):
            raise ProjectZipError(f"Symbolic link not allowed: {name}")
        if info.flag_bits & 0x1:
            raise ProjectZipError(f"Encrypted entries are not supported: {name}")
        rel = _relative(name)
        if not rel:
            raise ProjectZipError(f"Invalid path in zip: {name}")
        if rel in seen:
            raise ProjectZipError(f"Duplicate path in zip: {name}")
        seen.add(rel)
        if len(files) + 1 > MAX_FILE_COUNT:
            raise ProjectZipError(f"Zip contains more than {MAX_FILE_COUNT} files")
        if posixpath.basename(rel) in DISALLOWED_FILES:
            raise ProjectZipError(f"Disallowed file in project: {rel}")
        if info.file_size > MAX_INDIVIDUAL_FILE_SIZE:
            raise ProjectZipError(f"File {name} exceeds maximum size of {MAX_INDIVIDUAL_FILE_SIZE} bytes")
        declared_total += info.file_size
        if declared_total > MAX_TOTAL_UNCOMPRESSED_SIZE:
            raise ProjectZipError(f"Total uncompressed size exceeds limit of {MAX_TOTAL_UNCOMPRESSED_SIZE} bytes")
        files.append((info, rel))

    root = Path(os.path.realpath(dest))
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for info, rel in files:
        target = root / rel
        if os.path.commonpath([root, os.path.normpath(target)]) != str(root):
            raise ProjectZipError(f"Path traversal detected: {info.filename}")
        # a name that is both a file and a folder of the archive ("a" and "a/b")
        for parent in target.parents:
            if parent == root:
                break
            if parent.exists() and not parent.is_dir():
                raise ProjectZipError(f"Path conflicts with a file of the zip: {info.filename}")
        if target.is_dir():
            raise ProjectZipError(f"Path conflicts with a folder of the zip: {info.filename}")
        target.parent.mkdir(parents=True, exist_ok=True)
        written = 0
        try:
            with archive.open(info) as src, open(target, "xb") as out:
                while chunk := src.read(_CHUNK):
                    written += len(chunk)
                    total += len(chunk)
                    if written > min(info.file_size, MAX_INDIVIDUAL_FILE_SIZE):
                        raise ProjectZipError(f"File {info.filename} inflates beyond its declared size; refused")
                    if total > MAX_TOTAL_UNCOMPRESSED_SIZE:
                        raise ProjectZipError(f"Total uncompressed size exceeds limit of {MAX_TOTAL_UNCOMPRESSED_SIZE} bytes")
                    out.write(chunk)
        except ProjectZipError:
            raise
        except (
            zipfile.BadZipFile,
            zipfile.LargeZipFile,
            zlib.error,
            EOFError,
            NotImplementedError,
            RuntimeError,
            OSError,
            ValueError,
        ) as exc:  # a corrupt entry, an unknown compression method
            raise ProjectZipError(f"project_zip is not a valid zip archive: {info.filename}: {exc}") from None
    return Extracted(files=[rel for _, rel in files], total_size=total)
