"""MovieLens ratings as clicks: ml-latest(-small) CSV (also ``.gz``) and ml-1m ``.dat``.

Input: the ratings file (``ratings.csv``, ``ratings.csv.gz`` or ``ratings.dat``) or the folder
holding it; the movies file is taken from the same folder (``movies.csv[.gz]`` /
``movies.dat``, the latter Latin-1 encoded as GroupLens ships it). The label is
``rating >= threshold`` (4 by default); ratings equal to ``drop_rating`` are left out on purpose
and counted in ``meta.json`` under ``skipped.filtered``. Fields, all categorical except genres:
``user``, ``item``, ``genres`` (a ``|``-separated multi-hot sequence from the movies file, missing
for a movie not in it), ``hour`` and ``weekday`` (Monday = 0) of the UTC timestamp. Each row's
time is its timestamp (for ``--split time``).

With ``history_len = N`` (``--history-len``) each rating also gets the user's earlier ratings
(``readers.history``: strictly earlier timestamps, newest ``N``): ``hist_item`` (sharing
``item``'s vocabulary) and ``hist_genre`` (sharing ``genre``'s), where ``genre`` is a movie's
rarest genre -- the one fewest movies of the movies file have, ties by name -- a categorical
field of its own. One genre per history position keeps ``hist_item`` and ``hist_genre``
aligned; the rarest is the most specific one ("Comedy|Romance" -> Romance,
"Adventure|Animation|Children|Comedy|Fantasy" -> Animation), where the first listed would be
the alphabetical first. Ratings files are sorted by user, then movie: the reader sorts each
user's consecutive ratings by time (holding one user's ratings at a time), builds the
histories, and gives the rows back in file order. A user whose ratings are not together in the
file gets the rows of a later stretch checked against the earlier ones: earlier in time is a
bad row (``history.BACKWARDS``).

A prediction input may have no rating: ``userId,movieId,timestamp`` (CSV header) or
``UserID::MovieID::Timestamp`` (``.dat``); nothing is then left out by ``drop_rating``. Rows in
memory are refused (``read_table``): their genres come from the movies file beside a ratings
file.
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from mutualctr.data.readers import columns
from mutualctr.data.readers.base import BadRows, Issue, ParsedChunk, checked_chunk
from mutualctr.data.readers.history import HistoryBuilder, HistorySpec, time_sorted_user_runs
from mutualctr.data.readers.text import (
    DEFAULT_BLOCK_SIZE,
    first_line_width,
    header_of,
    read_delimited,
)
from mutualctr.data.schema import FieldSpec, Schema
from mutualctr.errors import ConfigError, DataError

FIELDS = ("user", "item", "genres", "hour", "weekday")
HISTORY_COLUMNS = ("item", "genre")  # with --history-len: genre, hist_item, hist_genre
DAT_COLUMNS = ("userId", "_1", "movieId", "_2", "rating", "_3", "timestamp")  # split on ":"
DAT_UNLABELLED = ("userId", "_1", "movieId", "_2", "timestamp")
CSV_COLUMNS = ("userId", "movieId", "rating", "timestamp")
SECONDS_PER_DAY = 86400
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday = 0)


def ratings_path(path: Path) -> Path:
    """The ratings file itself, or the one inside a folder."""
    if not path.is_dir():
        return path
    for name in ("ratings.csv", "ratings.csv.gz", "ratings.dat", "ratings.dat.gz"):
        if (path / name).is_file():
            return path / name
    raise DataError("no ratings.csv, ratings.csv.gz or ratings.dat in the folder", file=str(path))


def movies_file(ratings: Path) -> Path:
    stem = "movies.dat" if ".dat" in ratings.name else "movies.csv"
    for name in (stem, stem + ".gz"):
        if (ratings.parent / name).is_file():
            return ratings.parent / name
    raise DataError(f"no {stem} beside the ratings file", file=str(ratings))


def load_genres(movies: Path) -> tuple[pa.StringArray, pa.StringArray]:
    """(movie ids, their ``|``-joined genres) from a movies file (a small dimension table)."""
    if ".dat" in movies.name:
        opener = gzip.open if movies.name.endswith(".gz") else open
        with opener(movies, "rb") as handle:
            lines = pa.array(handle.read().decode("latin-1").splitlines(), pa.string())
        parts = pc.split_pattern(lines, "::")
        bad = pc.not_equal(pc.list_value_length(parts), 3).to_numpy(zero_copy_only=False)
        if bad.any():
            raise DataError("expected MovieID::Title::Genres", file=str(movies),
                            line=int(np.flatnonzero(bad)[0]) + 1)
        return pc.list_element(parts, 0), pc.list_element(parts, 2)
    try:
        table = pa_csv.read_csv(movies, convert_options=pa_csv.ConvertOptions(
            column_types={"movieId": pa.string(), "genres": pa.string()},
            include_columns=["movieId", "genres"]))
    except (pa.ArrowInvalid, KeyError) as err:
        raise DataError(f"cannot read the movies file: {err}", file=str(movies)) from None
    return (table.column("movieId").combine_chunks(),
            table.column("genres").combine_chunks())


def rarest_genres(genres: pa.StringArray) -> pa.StringArray:
    """Each movie's rarest genre among its ``|``-separated ones: the genre the fewest movies of
    ``genres`` have, ties by name ("" for a movie without genres)."""
    listed = [g.split("|") if g else [""] for g in genres.to_pylist()]
    movies = Counter(genre for names in listed for genre in set(names))
    return pa.array([min(names, key=lambda g: (movies[g], g)) for names in listed], pa.string())


class MovieLensReader:
    def __init__(
        self, min_count: int = 1, threshold: float = 4.0, drop_rating: float | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE, history_len: int = 0,
    ) -> None:
        if history_len < 0:
            raise ConfigError(f"--history-len must be >= 0, got {history_len}")
        self.threshold = threshold
        self.drop_rating = drop_rating
        self.block_size = block_size
        # every rating is a movie the user watched: a behaviour whatever its label
        self.history = (HistorySpec("user", "timestamp", HISTORY_COLUMNS, max_len=history_len,
                                    events="all") if history_len else None)
        fields = tuple(
            FieldSpec(n, "sequence" if n == "genres" else "categorical", min_count=min_count)
            for n in FIELDS
        )
        if self.history is not None:
            fields += (FieldSpec("genre", "categorical", min_count=min_count),
                       *self.history.fields)
        self.schema = Schema(fields=fields, label="rating")

    def _raw_chunks(
        self, path: Path, bad_rows: BadRows, allow_unlabelled: bool,
    ) -> tuple[Iterator[tuple[pa.Table, np.ndarray]], bool]:
        """The raw chunks of the ratings file, and whether it has ratings (labels)."""
        if ".dat" in path.name:
            labelled = not (allow_unlabelled
                            and first_line_width(path, ":", quoted=False) == len(DAT_UNLABELLED))
            return read_delimited(path, bad_rows, delimiter=":", quoted=False,
                                  column_names=DAT_COLUMNS if labelled else DAT_UNLABELLED,
                                  block_size=self.block_size), labelled
        header = set(header_of(path, ","))
        labelled = "rating" in header or not allow_unlabelled
        needed = CSV_COLUMNS if labelled else tuple(c for c in CSV_COLUMNS if c != "rating")
        if not header.issuperset(needed):
            raise DataError(f"expected columns {','.join(needed)}", file=str(path), line=1)
        return read_delimited(path, bad_rows, delimiter=",", block_size=self.block_size), labelled

    def read(
        self, path: Path, bad_rows: BadRows, *, allow_unlabelled: bool = False,
    ) -> Iterator[ParsedChunk]:
        path = ratings_path(path)
        chunks = self._parsed_chunks(path, bad_rows, allow_unlabelled)
        if self.history is None:
            yield from chunks
            return
        builder = HistoryBuilder(self.history, path, bad_rows, order_hint=(
            "each user's ratings must be together in the file, as GroupLens ships them"))
        for chunk in time_sorted_user_runs(chunks, "user"):
            assert chunk.time is not None
            built = builder.add(chunk, chunk.columns["user"], chunk.time)
            yield built.select(np.argsort(built.lines, kind="stable"))  # file order again

    def read_table(self, table: pa.Table, bad_rows: BadRows) -> Iterator[ParsedChunk]:
        raise ConfigError("MovieLens rows take their genres from the movies file beside the "
                          "ratings file: give the ratings file (or its folder), not rows in "
                          "memory")

    def _parsed_chunks(
        self, path: Path, bad_rows: BadRows, allow_unlabelled: bool,
    ) -> Iterator[ParsedChunk]:
        movie_ids, movie_genres = load_genres(movies_file(path))
        movie_genre = rarest_genres(movie_genres) if self.history is not None else None
        chunks, labelled = self._raw_chunks(path, bad_rows, allow_unlabelled)
        for table, lines in chunks:
            issues: list[Issue] = []
            for sep in ("_1", "_2", "_3"):
                if sep in table.column_names:
                    bad = pc.not_equal(table.column(sep), b"").to_numpy(zero_copy_only=False)
                    if bad.any():
                        issues.append(Issue(bad, None, "expected '::' between values"))
            numbers = {name: columns.floats(table.column(name).combine_chunks(), name, issues)
                       for name in (("rating", "timestamp") if labelled else ("timestamp",))}
            for name, values in numbers.items():
                if np.isnan(values).any():
                    issues.append(Issue(np.isnan(values), name, "value is missing"))
            item = columns.utf8(table.column("movieId").combine_chunks(), "item", issues)
            where = pc.index_in(item, value_set=movie_ids)
            stamp = numbers["timestamp"]
            seconds = np.nan_to_num(stamp).astype(np.int64)
            days = seconds // SECONDS_PER_DAY
            parsed = {
                "user": columns.utf8(table.column("userId").combine_chunks(), "user", issues),
                "item": item,
                "genres": pc.fill_null(pc.take(movie_genres, where), ""),
                "hour": pa.array((seconds % SECONDS_PER_DAY) // 3600).cast(pa.string()),
                "weekday": pa.array((days + EPOCH_WEEKDAY) % 7).cast(pa.string()),
            }
            if movie_genre is not None:
                parsed["genre"] = pc.fill_null(pc.take(movie_genre, where), "")
            label = ((numbers["rating"] >= self.threshold).astype(np.float32) if labelled
                     else columns.unknown_labels(table.num_rows))
            chunk = checked_chunk(path, bad_rows, issues, parsed, label, lines, table, stamp)
            if labelled and self.drop_rating is not None:
                dropped = chunk.raw.column("rating")  # only ratings that parsed remain
                keep = ~np.isclose(columns.floats(dropped.combine_chunks(), "rating", []),
                                   self.drop_rating)
                bad_rows.note_filtered(f"rating == {self.drop_rating:g}", int((~keep).sum()))
                chunk = chunk.take(keep)
            yield chunk
