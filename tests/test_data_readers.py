"""Every format on a tiny hand-written file: encoded arrays against hand-computed ids.

Reminder of the id rules (data/encoder.py): 0 pad, 1 OOV, kept values from 2 by decreasing
train count, ties by value (missing last among integer ties: nulls sort at the end); the missing
value is kept whatever its count.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_files import build, criteo_line, write_lines
from mutualctr.data.readers.criteo import discretize
from mutualctr.data.readers.tabular import load_spec
from mutualctr.data.store import EncodedStore


def column(store: EncodedStore, name: str, split: str = "train") -> list[int]:
    names = [f.name for f in store.feature_map.categorical]
    return store.split(split).categorical[:, names.index(name)].tolist()


def vocab_size(store: EncodedStore, name: str) -> int:
    return next(f.vocab_size for f in store.feature_map.features if f.name == name)


def test_criteo_discretisation_matches_bars() -> None:
    values = np.array([np.nan, -3, 0, 1, 2, 2.5, 3, 100])
    # floor(ln(x)^2) for x > 2: ln(2.5)^2 = 0.84, ln(3)^2 = 1.21, ln(100)^2 = 21.2
    expected = [np.nan, -3, 0, 1, 2, 0, 1, 21]
    np.testing.assert_array_equal(discretize(values), expected)


def test_criteo_encoding_with_min_count(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.txt", [
        criteo_line("1", I1="5", C1="a", C2="x"),
        criteo_line("0", I1="5", C1="a", C2="x"),
        criteo_line("0", I1="1", C1="b", C2="y"),
        criteo_line("1", C1="a"),
    ])
    store = build(tmp_path, "criteo", [path], min_count=2)
    # I1: 5 -> floor(ln(5)^2) = 2 (twice), 1 (once, rare -> OOV), missing (kept, id 3)
    assert column(store, "I1") == [2, 2, 1, 3]
    assert vocab_size(store, "I1") == 4
    # C1: a (3x) -> 2, b (once) -> OOV
    assert column(store, "C1") == [2, 2, 1, 2]
    # C2: x twice -> 2; y rare -> OOV; missing "" kept despite count 1 -> 3
    assert column(store, "C2") == [2, 2, 1, 3]
    assert column(store, "I7") == [2, 2, 2, 2]  # always missing: one token
    np.testing.assert_array_equal(store.split("train").label, [1, 0, 0, 1])
    assert store.meta["splits"]["train"]["positive_rate"] == 0.5

    other = write_lines(tmp_path / "new.txt", [criteo_line("0", I1="5", C1="zzz", C2="")])
    encoded, raw = store.encode_file(other)
    assert encoded.categorical[0, 0] == 2 and encoded.categorical[0, 13] == 1  # C1 unseen: OOV
    assert encoded.categorical[0, 14] == 3
    assert raw.num_rows == 1


def test_criteo_numeric_option_standardises_signed_log(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.txt", [
        criteo_line("1", I1="0"), criteo_line("0", I1=str(np.e - 1)), criteo_line("0"),
    ])
    store = build(tmp_path, "criteo", [path], criteo_numeric=True, min_count=1)
    # log1p: 0 and 1; mean 0.5, std 0.5 -> -1, 1; missing -> 0
    np.testing.assert_allclose(store.split("train").numeric[:, 0], [-1, 1, 0], atol=1e-6)
    assert len(store.feature_map.numeric) == 13 and len(store.feature_map.categorical) == 26


AVAZU_HEADER = (
    "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,app_domain,"
    "app_category,device_id,device_ip,device_model,device_type,device_conn_type,C14,C15,C16,C17,"
    "C18,C19,C20,C21"
)


def avazu_line(click: str, hour: str, site: str) -> str:
    rest = ["1005", "0", site] + ["v"] * 18
    return ",".join(["123", click, hour, *rest])


def test_avazu_derives_hour_weekday_weekend_and_drops_id(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "train.csv", [
        AVAZU_HEADER,
        avazu_line("0", "14102100", "s1"),  # Tue 21 Oct 2014, 00h
        avazu_line("1", "14102518", "s1"),  # Sat 25 Oct 2014, 18h
        avazu_line("1", "14102518", "s2"),
    ])
    store = build(tmp_path, "avazu", [path])  # default min_count 2
    names = [f.name for f in store.feature_map.features]
    assert "id" not in names and names[-3:] == ["hour", "weekday", "weekend"]
    assert column(store, "site_id") == [2, 2, 1]  # s2 seen once < 2
    assert column(store, "hour") == [1, 2, 2]  # "18" twice kept, "0" once -> OOV
    assert column(store, "weekday") == [1, 2, 2]  # Saturday = 5 twice
    assert column(store, "weekend") == [1, 2, 2]
    store1 = build(tmp_path, "avazu", [path], out="store1", min_count=1)
    # counts: "18" x2 -> 2, "0" x1 -> 3 ; weekday "5" x2 -> 2, "1" -> 3
    assert column(store1, "hour") == [3, 2, 2]
    assert column(store1, "weekday") == [3, 2, 2]
    assert store1.encoder.vocabs["weekday"].to_pylist() == ["5", "1"]
    assert store1.encoder.vocabs["weekend"].to_pylist() == ["1", "0"]
    np.testing.assert_array_equal(store1.split("train").label, [0, 1, 1])


def test_frappe_csv_and_libfm_forms_agree(tmp_path: Path) -> None:
    header = "label,user,item,daytime,weekday,isweekend,homework,cost,weather,country,city"
    csv_path = write_lines(tmp_path / "train.csv", [
        header, "1,7,20,a,b,c,d,e,f,g,h", "0,8,20,a,b,c,d,e,f,g,h", "0,7,21,a,b,c,d,e,f,g,h",
    ])
    libfm_path = write_lines(tmp_path / "frappe.train.libfm", [
        "1 7:1 20:1 30:1 40:1 50:1 60:1 70:1 80:1 90:1 99:1",
        "-1 8:1 20:1 30:1 40:1 50:1 60:1 70:1 80:1 90:1 99:1",
        "-1 7:1 21:1 30:1 40:1 50:1 60:1 70:1 80:1 90:1 99:1",
    ])
    for out, path in (("csv", csv_path), ("libfm", libfm_path)):
        store = build(tmp_path, "frappe", [path], out=out)
        assert column(store, "user") == [2, 3, 2]  # 7 twice, 8 once
        assert column(store, "item") == [2, 2, 3]
        assert column(store, "city") == [2, 2, 2]
        np.testing.assert_array_equal(store.split("train").label, [1, 0, 0])


def write_movielens_csv(folder: Path) -> Path:
    folder.mkdir()
    (folder / "movies.csv").write_text(
        'movieId,title,genres\n1,"Toy Story, The (1995)",Animation|Comedy\n2,Heat (1995),Action\n'
    )
    with gzip.open(folder / "ratings.csv.gz", "wt") as handle:
        handle.write("userId,movieId,rating,timestamp\n"
                     "1,1,4.0,0\n"  # 1970-01-01 00:00 Thursday (3)
                     "1,2,3.0,90000\n"  # 1970-01-02 01:00 Friday (4)
                     "2,1,5.0,3600\n"  # 01:00 Thursday
                     "2,9,4.5,3600\n")  # movie 9 not in movies.csv: genres missing
    return folder


def test_movielens_csv_gz(tmp_path: Path) -> None:
    store = build(tmp_path, "movielens", [write_movielens_csv(tmp_path / "ml")])
    train = store.split("train")
    np.testing.assert_array_equal(train.label, [1, 0, 1, 1])
    assert column(store, "user") == [2, 2, 3, 3]
    assert column(store, "item") == [2, 3, 2, 4]  # 1 twice; then "2" < "9"
    assert column(store, "hour") == [3, 2, 2, 2]  # "1" x3, "0" x1
    assert column(store, "weekday") == [2, 3, 2, 2]  # "3" x3, "4" x1
    genres = store.feature_map.sequence[0]
    assert genres.max_len == 2
    # tokens: Animation x2, Comedy x2, Action x1, missing "" x1 ->
    # Animation 2, Comedy 3, "" 4 (count 1, "" < "Action"), Action 5
    np.testing.assert_array_equal(train.sequences[0], [[2, 3], [5, 0], [2, 3], [4, 0]])
    assert_encodes_like_the_store(store, tmp_path / "ml")


def test_movielens_threshold_and_dropped_rating(tmp_path: Path) -> None:
    folder = write_movielens_csv(tmp_path / "ml")
    store = build(tmp_path, "movielens", [folder], rating_threshold=4.5, drop_rating=3.0)
    np.testing.assert_array_equal(store.split("train").label, [0, 1, 1])
    assert store.meta["skipped"]["filtered"] == {"rating == 3": 1}


def test_movielens_1m_dat_with_latin1_titles(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_bytes(
        "1::Toy Story (1995)::Animation|Children's\n2::Ni\xf1o: Tale (1990)::Drama\n"
        .encode("latin-1"))
    (folder / "ratings.dat").write_text("1::1::5::978300760\n1::2::3::978302109\n")
    store = build(tmp_path, "movielens", [folder / "ratings.dat"])
    train = store.split("train")
    np.testing.assert_array_equal(train.label, [1, 0])
    assert store.encoder.vocabs["genres"].to_pylist() == ["Animation", "Children's", "Drama"]
    np.testing.assert_array_equal(train.sequences[0], [[2, 3], [4, 0]])
    # 978300760 = 2000-12-31 22:12:40 UTC (Sunday), 978302109 = 22:35 the same day
    assert store.encoder.vocabs["hour"].to_pylist() == ["22"]
    assert store.encoder.vocabs["weekday"].to_pylist() == ["6"]


SCHEMA_YAML = """
label: clicked
fields:
  - {name: user, type: categorical}
  - {name: price, type: numeric}
  - {name: tags, type: sequence, separator: ";", max_len: 2}
"""


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_tabular_csv_and_parquet_with_schema(tmp_path: Path, fmt: str) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA_YAML)
    table = pa.table({
        "clicked": [1, 0, 1], "user": ["u1", "u2", "u1"], "price": [1.0, 3.0, None],
        "tags": ["a;b;c", "b", ""], "ignored": ["x", "y", "z"],
    })
    path = tmp_path / f"data.{fmt}"
    if fmt == "csv":
        path.write_text("clicked,user,price,tags,ignored\n1,u1,1,a;b;c,x\n0,u2,3,b,y\n1,u1,,,z\n")
    else:
        pq.write_table(table, path)
    store = build(tmp_path, fmt, [path], tabular=load_spec(schema))
    train = store.split("train")
    assert column(store, "user") == [2, 3, 2]
    np.testing.assert_allclose(train.numeric[:, 0], [-1, 1, 0])  # mean 2, std 1; missing 0
    # tags: b x2 -> 2, then "" , a, c (one each, by value) -> 3, 4, 5; truncated to 2
    np.testing.assert_array_equal(train.sequences[0], [[4, 2], [2, 0], [3, 0]])
    np.testing.assert_array_equal(train.label, [1, 0, 1])
    assert_encodes_like_the_store(store, path)


def assert_encodes_like_the_store(store: EncodedStore, path: Path) -> None:
    """``encode_file`` on the training file reproduces the stored train split."""
    encoded, raw = store.encode_file(path)
    assert raw.num_rows == len(encoded)
    for (name, mine), (_, stored) in zip(encoded.arrays(), store.split("train").arrays(),
                                         strict=True):
        np.testing.assert_array_equal(mine, stored, err_msg=name)
