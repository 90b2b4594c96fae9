"""Plain-Python readers for every data source (no tf.data here; see ``pipelines.sources``).

Each reader raises :class:`pipelines.errors.DataError` naming the file, line and value on
bad input.
"""

from pipelines.readers.conll import Sentence, find_split_files, iter_conll, read_conll
from pipelines.readers.dates import generate_dates
from pipelines.readers.music import (
    list_chorales,
    notes_from_onsets,
    read_midi,
    read_music21_chorales,
    write_midi,
)
from pipelines.readers.pairs import read_pairs
from pipelines.readers.plain_text import (
    chunk_text,
    parse_play,
    read_lines,
    read_names,
    read_shakespeare,
)
from pipelines.readers.text_label import (
    clean_text,
    read_aclimdb,
    read_movie_reviews,
    read_text_label,
)

__all__ = [
    "Sentence", "chunk_text", "clean_text", "find_split_files", "generate_dates", "iter_conll",
    "list_chorales", "notes_from_onsets", "parse_play", "read_aclimdb", "read_conll",
    "read_lines", "read_midi", "read_movie_reviews", "read_music21_chorales", "read_names",
    "read_pairs", "read_shakespeare", "read_text_label", "write_midi",
]
