"""Synthetic date normalisation pairs: human-readable date in many locales -> ISO YYYY-MM-DD.

Dates are drawn uniformly with a seeded ``random.Random`` (faker's date provider did the same
at 3x the cost), text comes from babel's CLDR formats (full/long/medium/short plus custom
patterns). Dates are drawn from 1950-2049 so that two-digit years (``short`` formats) still
name exactly one year; every source string occurs once in the whole dataset, so the same
input never maps to two targets (``3/4/01`` is March in en_US and April elsewhere) and no
validation/test input is also a training input.
"""

from __future__ import annotations

import datetime
import random
import re
from typing import Sequence

from pipelines.errors import DataError
from pipelines.readers._common import RawSplits, check_options

LOCALES = (
    "en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "pt_BR", "pt_PT", "nl_NL",
    "sv_SE", "da_DK", "nb_NO", "fi_FI", "pl_PL", "cs_CZ", "hu_HU", "ro_RO", "tr_TR", "ru_RU",
    "uk_UA", "el_GR", "id_ID", "vi_VN", "ja_JP", "zh_CN", "ko_KR", "hi_IN", "ar_EG",
)
# CLDR pattern letters: y year (not Y, the week-based year), M month, d day, E weekday.
FORMATS = (
    "full", "long", "medium", "short",
    "d MMMM y", "d MMM y", "dd MMM y", "MMMM d, y", "MMM d, y", "EEEE, d MMMM y",
    "EEE, d MMM y", "d MMMM, y", "EEEE d MMMM y", "dd.MM.y", "y/MM/dd", "d. MMMM y",
)
FIRST, LAST = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)
DEFAULT_COUNTS = {"train": 50000, "validation": 2000, "test": 2000}
# Bidi marks (ar) are invisible and nobody types them; CLDR's no-break spaces are typed as
# plain spaces. Normalising both keeps inputs to what a user would write.
_INVISIBLE = re.compile("[\u200e\u200f\u061c]")
_SPACES = re.compile("[\u00a0\u202f\u2009]")


def _parse_locales(locales: Sequence[str]) -> list:
    """babel ``Locale`` objects; parsed once because each keeps its CLDR data cached."""
    from babel import Locale, UnknownLocaleError

    out = []
    for name in locales:
        try:
            out.append(Locale.parse(name))
        except (UnknownLocaleError, ValueError):
            raise DataError(f"unknown babel locale {name!r}") from None
    if not out:
        raise DataError("locales must not be empty")
    return out


def generate_dates(n: int, seed: int = 1337, locales: Sequence[str] = LOCALES, *,
                   exclude: set[str] | None = None, stream: str = "train"
                   ) -> list[tuple[str, str]]:
    """``n`` distinct ``(human-readable date, "YYYY-MM-DD")`` pairs, deterministic per seed.

    Args:
        n: Number of pairs.
        seed: Seed; with ``stream`` it fixes the output.
        locales: Babel locale names.
        exclude: Source strings not to produce (filled in place with the new ones), used to
            keep splits disjoint.
        stream: Name of an independent stream (one per split).

    Raises:
        DataError: When ``n`` distinct strings cannot be found (tiny locale/format space).
    """
    from babel.dates import get_date_format, parse_pattern

    parsed = _parse_locales(locales)
    # Resolve every (locale, format) to a compiled pattern once: babel's format_date would
    # re-resolve it on each call, which is most of its cost.
    patterns = [(locale, get_date_format(f, locale=locale) if f in ("full", "long", "medium",
                                                                    "short")
                 else parse_pattern(f)) for locale in parsed for f in FORMATS]
    seen = set() if exclude is None else exclude
    rng = random.Random(f"dates:{seed}:{stream}")
    first, span = FIRST.toordinal(), LAST.toordinal() - FIRST.toordinal()
    out = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 20 * n + 1000:
            raise DataError(f"could only make {len(out)} distinct dates of {n} requested from "
                            f"{len(parsed)} locale(s)", f"dates:{stream}")
        date = datetime.date.fromordinal(first + rng.randint(0, span))
        locale, pattern = rng.choice(patterns)
        text = pattern.apply(date, locale)
        text = _SPACES.sub(" ", _INVISIBLE.sub("", text)).strip()
        if text in seen:
            continue
        seen.add(text)
        out.append((text, date.isoformat()))
    return out


def dates_splits(*, seed: int, max_examples: int, options: dict) -> RawSplits:
    """Generated train/validation/test pairs; test and validation first so train avoids them.

    Options: ``locales`` (default :data:`LOCALES`), ``num_examples`` (an int for train, or
    a dict of split sizes; default 50,000 / 2,000 / 2,000).
    """
    check_options(options, ("locales", "num_examples"), "dates")
    counts = dict(DEFAULT_COUNTS)
    requested = options.get("num_examples")
    if isinstance(requested, dict):
        counts.update(requested)
    elif requested:
        counts["train"] = int(requested)
    if max_examples:
        cap = max(1, max_examples // 4)
        counts = {"train": min(counts["train"], max_examples),
                  "validation": min(counts["validation"], cap),
                  "test": min(counts["test"], cap)}
    locales = list(options.get("locales") or LOCALES)
    seen: set[str] = set()
    splits = {}
    for split in ("test", "validation", "train"):
        splits[split] = generate_dates(counts[split], seed, locales, exclude=seen, stream=split)
    return RawSplits(splits["train"], splits["validation"], splits["test"] or None, {
        "source": "dates", "synthetic": True, "locales": locales, "formats": list(FORMATS),
        "split_policy": "generated per split from independent seeded streams; "
                        "no source string in two splits"})
