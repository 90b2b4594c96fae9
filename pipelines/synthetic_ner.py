"""Offline demo NER corpus: template sentences filled with faker entities, tagged by construction.

This is SYNTHETIC data for running the NER task without a download; its scores say nothing
about real-text NER. Entities (PER, ORG, LOC, MISC) come from faker in several locales, so
names and places vary in spelling and length; sentences come from a few dozen templates in
English, German, Spanish and French. Tags are IOB2 (convert with ``pipelines.tags``).
"""

from __future__ import annotations

import random
import re

# "{PER}" etc. are entity slots; other tokens are literal. Templates are pre-tokenized the
# CoNLL way (punctuation separated) so that splitting on spaces gives the tokens.
TEMPLATES = {
    "en": (
        "{PER} , a {LANG} speaker , joined {ORG} in {YEAR} .",
        "{PER} , chief executive of {ORG} , said on {DAY} that the {LOC} plant would close .",
        "{ORG} shares rose 3 percent in {LOC} after {PER} joined the board .",
        "{PER} won the {MISC} ahead of {PER} .",
        "Police in {LOC} said {PER} had been arrested on {DAY} .",
        "{ORG} agreed to buy {ORG} for an undisclosed sum .",
        "The {MISC} will be held in {LOC} next year , organisers said .",
        "{PER} , who speaks fluent {LANG} , moved to {LOC} in {YEAR} .",
        "{LOC} beat {LOC} 2-1 in a friendly on {DAY} .",
        "Analysts at {ORG} expect growth to slow in {LOC} .",
        "{PER} told reporters in {LOC} : \" We are very happy . \"",
        "Shares of {ORG} fell after the {MISC} .",
        "{PER} and {PER} met in {LOC} to discuss trade .",
        "The minister flew from {LOC} to {LOC} on {DAY} .",
        "{ORG} opened a new office in {LOC} , {LOC} .",
    ),
    "de": (
        "{PER} , Chef von {ORG} , sagte am {DAY} , das Werk in {LOC} werde geschlossen .",
        "{ORG} übernimmt {ORG} für eine ungenannte Summe .",
        "{PER} gewann den {MISC} vor {PER} .",
        "Die Polizei in {LOC} nahm {PER} am {DAY} fest .",
    ),
    "es": (
        "{PER} , presidente de {ORG} , dijo el {DAY} que cerrará la planta de {LOC} .",
        "{ORG} compró {ORG} por una suma no revelada .",
        "{PER} ganó el {MISC} por delante de {PER} .",
        "La policía de {LOC} detuvo a {PER} el {DAY} .",
    ),
    "fr": (
        "{PER} , patron de {ORG} , a annoncé {DAY} la fermeture du site de {LOC} .",
        "{ORG} rachète {ORG} pour un montant non divulgué .",
        "{PER} a remporté le {MISC} devant {PER} .",
        "La police de {LOC} a arrêté {PER} {DAY} .",
    ),
}
LOCALES = {"en_US": "en", "en_GB": "en", "de_DE": "de", "es_ES": "es", "fr_FR": "fr",
           "it_IT": "en", "nl_NL": "en"}
DAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "es": ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
EVENTS = ("{city} Open", "{city} Marathon", "{year} World Cup", "{last} Prize",
          "{city} Film Festival", "{city} Grand Prix")
DEFAULT_COUNTS = {"train": 8000, "validation": 1000, "test": 1000}
_SLOT = re.compile(r"^\{(\w+)\}$")


def _tokens(text: str) -> list[str]:
    # Faker values are plain words, hyphenated names and abbreviations ("e.G."); only a
    # trailing comma ("Smith, Jones and Brown") needs splitting off, as CoNLL does.
    out = []
    for word in text.split():
        if len(word) > 1 and word.endswith(","):
            out.extend([word[:-1], ","])
        else:
            out.append(word)
    return out


class _Pool:
    """Entity values drawn once per (locale, stream) from faker, then sampled with ``rng``.

    faker's weighted draws cost ~0.1 ms each; sampling pools of a few hundred values keeps a
    10k-sentence corpus at about a second while first x last names still give ~10^4 people.
    """

    SIZES = {"first": 150, "last": 150, "company": 100, "city": 100, "country": 40,
             "language": 40}

    def __init__(self, fake, n: int):
        def draw(method, size):
            return [getattr(fake, method)() for _ in range(min(size, max(4, 2 * n)))]

        self.values = {k: draw(m, self.SIZES[k]) for k, m in (
            ("first", "first_name"), ("last", "last_name"), ("company", "company"),
            ("city", "city"), ("country", "country"), ("language", "language_name"))}

    def entity(self, kind: str, rng: random.Random) -> str:
        v = self.values
        if kind == "PER":
            return f"{rng.choice(v['first'])} {rng.choice(v['last'])}"
        if kind == "ORG":
            return rng.choice(v["company"])
        if kind == "LOC":
            return rng.choice(v["city"] if rng.random() < 0.6 else v["country"])
        if kind == "LANG":  # languages are MISC in CoNLL, as are events and prizes
            return rng.choice(v["language"])
        return rng.choice(EVENTS).format(city=rng.choice(v["city"]), year=rng.randint(1950, 2030),
                                         last=rng.choice(v["last"]))


def generate_sentence(pool: _Pool, language: str,
                      rng: random.Random) -> tuple[list[str], list[str]]:
    """One ``(tokens [n], IOB2 tags [n])`` sentence from a random template of ``language``."""
    tokens, tags = [], []
    for word in rng.choice(TEMPLATES[language]).split():
        match = _SLOT.match(word)
        if not match:
            tokens.append(word)
            tags.append("O")
            continue
        kind = match.group(1)
        if kind == "DAY":
            tokens.append(rng.choice(DAYS[language]))
            tags.append("O")
        elif kind == "YEAR":
            tokens.append(str(rng.randint(1950, 2024)))
            tags.append("O")
        else:
            words = _tokens(pool.entity(kind, rng))
            tag = "MISC" if kind == "LANG" else kind
            tokens.extend(words)
            tags.extend([f"B-{tag}"] + [f"I-{tag}"] * (len(words) - 1))
    return tokens, tags


_FAKERS: dict = {}


def _faker(locale: str):
    """One Faker per locale per process, with only the providers used here (building one
    with all providers costs ~0.2 s, this one ~0.03 s); reseeding is free."""
    if locale not in _FAKERS:
        from faker import Faker

        _FAKERS[locale] = Faker(locale, providers=[
            "faker.providers.person", "faker.providers.company", "faker.providers.address"])
    return _FAKERS[locale]


def generate_ner(n: int, seed: int = 1337, *, stream: str = "train",
                 locales: tuple[str, ...] | list[str] = tuple(LOCALES),
                 exclude: set[str] | None = None) -> list[tuple[list[str], list[str]]]:
    """``n`` distinct tagged sentences, deterministic for (seed, stream, locales).

    Args:
        n: Number of sentences.
        seed: Seed.
        stream: Independent stream name (one per split).
        locales: Faker locales to draw entities from (keys of :data:`LOCALES`).
        exclude: Sentences (joined tokens) not to produce; updated in place, which keeps
            splits disjoint.
    """
    unknown = sorted(set(locales) - set(LOCALES))
    if unknown:
        raise ValueError(f"unsupported locale(s) {unknown}; choose from {sorted(LOCALES)}")
    rng = random.Random(f"ner:{seed}:{stream}")
    fakers = []
    for i, locale in enumerate(locales):
        fake = _faker(locale)
        fake.seed_instance(f"ner:{seed}:{stream}:{i}")
        fakers.append((_Pool(fake, n), LOCALES[locale]))
    seen = set() if exclude is None else exclude
    out = []
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 20 * n + 1000:  # only reachable with a tiny template/locale space
            raise RuntimeError(f"could only make {len(out)} distinct sentences of {n}")
        pool, language = rng.choice(fakers)
        tokens, tags = generate_sentence(pool, language, rng)
        key = " ".join(tokens)
        if key in seen:
            continue
        seen.add(key)
        out.append((tokens, tags))
    return out


def synthetic_splits(*, seed: int, counts: dict[str, int], locales=None) -> dict[str, list]:
    """Train/validation/test sentences from independent streams, no sentence in two splits."""
    locales = tuple(locales or LOCALES)
    seen: set[str] = set()
    out = {}
    for split in ("test", "validation", "train"):
        out[split] = generate_ner(counts[split], seed, stream=split, locales=locales,
                                  exclude=seen)
    return out
