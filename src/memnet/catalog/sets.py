"""The shipped catalogue (`catalog.json`) read into typed records."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import quote

from memnet.errors import MemNetError

__all__ = ["RAW_BASE", "CatalogFile", "CatalogSet", "Source", "find_set", "load_catalog"]

# Where a public repository's files at one commit are served byte for byte.
RAW_BASE = "https://raw.githubusercontent.com"


@dataclass(frozen=True)
class CatalogFile:
    """One image of a set: the source's bytes and what they decode to."""

    name: str
    bytes: int
    sha256: str
    width: int
    height: int
    mode: str
    pixels_sha256: str


@dataclass(frozen=True)
class Source:
    """Where a set comes from: a folder of a public repository at one commit, or a web page."""

    repository: str | None
    commit: str | None
    path: str | None
    homepage: str | None

    def file_url(self, name: str, base: str = RAW_BASE) -> str:
        """The URL of one file of the set under `base` (the raw-file host or a mirror of it)."""
        if self.repository is None or self.commit is None or self.path is None:
            raise MemNetError("this set has no repository source to download from")
        relative = f"{self.repository}/{self.commit}/{self.path}/{name}"
        return f"{base.rstrip('/')}/{quote(relative)}"

    def describe(self) -> str:
        """A short human-readable origin: `owner/repo@commit:path`, else the homepage."""
        if self.repository and self.commit and self.path is not None:
            return f"{self.repository}@{self.commit[:7]}:{self.path}"
        return self.homepage or "unknown"


@dataclass(frozen=True)
class CatalogSet:
    """A benchmark or training set: what it is for, where it lives and its files."""

    name: str
    folder: str  # where it lives under a data root, e.g. "sr/Set5"
    task: str  # sr, denoise, jpeg
    role: str  # test or train
    purpose: str
    colour: str
    images: int
    source: Source
    unavailable: str | None  # why memnet cannot fetch it, or None when it can
    reference_copy: str | None  # how memnet's own evaluation copy compares with the source
    files: tuple[CatalogFile, ...]

    @property
    def fetchable(self) -> bool:
        return self.unavailable is None and bool(self.files)


def _parse_set(raw: dict[str, Any]) -> CatalogSet:
    source = raw["source"]
    return CatalogSet(
        name=raw["name"],
        folder=raw["folder"],
        task=raw["task"],
        role=raw["role"],
        purpose=raw["purpose"],
        colour=raw["colour"],
        images=int(raw["images"]),
        source=Source(
            repository=source.get("repository"),
            commit=source.get("commit"),
            path=source.get("path"),
            homepage=source.get("homepage"),
        ),
        unavailable=raw.get("unavailable"),
        reference_copy=raw.get("reference_copy"),
        files=tuple(CatalogFile(**item) for item in raw.get("files", [])),
    )


@functools.lru_cache(maxsize=1)
def load_catalog() -> tuple[CatalogSet, ...]:
    """Every set of the shipped catalogue, in catalogue order."""
    text = resources.files("memnet.catalog").joinpath("catalog.json").read_text("utf-8")
    return tuple(_parse_set(raw) for raw in json.loads(text)["sets"])


def find_set(name: str) -> CatalogSet | None:
    """The set called `name` (case-insensitive), or None."""
    sets = load_catalog()
    for entry in sets:
        if entry.name == name:
            return entry
    lowered = name.lower()
    return next((entry for entry in sets if entry.name.lower() == lowered), None)
