"""Readers for every data source.

The whole-file readers exported here return plain Python (``read_conll``, ``read_pairs``...).
The streamed readers (``text_stream``, ``conll_stream``, ``file_stream``,
``pairs.pairs_file_splits``, ``tfds_sources``) index a source once and return
``pipelines.streaming.StreamedSplits`` whose ``tf.data`` splits read records lazily; the
training and evaluation paths of ``pipelines.sources.load`` use them for files and folders.

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
