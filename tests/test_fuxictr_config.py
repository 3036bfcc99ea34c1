"""FuxiCTR dataset configs read as their users have them (``data prepare --fuxictr-config``,
``data schema``): FuxiCTR's eight demo configs, unchanged, prepare a store or are refused naming
the key; a sequence sharing its target's vocabulary trains DIN; the printed schema gives the
identical store."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mutualctr.cli import main
from mutualctr.data.fuxictr_config import load_dataset
from mutualctr.data.store import EncodedStore
from mutualctr.errors import ConfigError, DataError
from mutualctr.models.behaviour import BehaviourPairs

DEMO = Path(__file__).resolve().parents[2] / "shared" / "data" / "fuxictr_demo"
TAOBAO_FIELDS = ["userid", "adgroup_id", "pid", "cate_id", "campaign_id", "customer", "brand",
                 "cms_segid", "cms_group_id", "final_gender_code", "age_level", "pvalue_level",
                 "shopping_level", "occupation"]
# outcome of each demo config: None (a store) or the words its refusal must hold
DEMO_OUTCOMES = {
    1: None,
    2: ["key 'feature_cols': missing", "key 'label_col': missing"],
    3: ["key 'data_format': 'npz'"],
    4: None,
    5: ["field 'userid', key 'pretrained_emb'", "field 'userid', key 'freeze_emb'"],
    6: ["key 'data_format': 'npz'"],
    7: ["field 'weekday', key 'preprocess': 'convert_weekday'",
        "field 'hour', key 'preprocess': 'convert_hour'"],
    8: ["field 'feat3', key 'type': 'embedding'", "field 'feat3', key 'pretrain_dim'"],
}
# as FuxiCTR users describe the Taobao sample for DIN: the click history shares adgroup_id's
# embedding (FuxiCTR's share_embedding)
TAOBAO_DIN = """\
taobao_din:
    data_root: ../data/
    data_format: csv
    train_data: ../data/tiny_csv/train_sample.csv
    valid_data: ../data/tiny_csv/valid_sample.csv
    test_data: ../data/tiny_csv/test_sample.csv
    min_categr_count: 1
    feature_cols:
        - {name: [userid, adgroup_id, pid, cate_id, campaign_id, customer, brand, cms_segid,
                  cms_group_id, final_gender_code, age_level, pvalue_level, shopping_level,
                  occupation], active: True, dtype: str, type: categorical}
        - {name: price, active: True, dtype: float, type: numeric, normalizer: StandardScaler}
        - {name: click_sequence, active: True, dtype: str, type: sequence, splitter: ^,
           max_len: 5, share_embedding: adgroup_id, feature_encoder: null}
        - {name: time_stamp, active: False, dtype: str, type: categorical}
    label_col: {name: clk, dtype: float}
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """The folder FuxiCTR runs in (its demo/): the configs' ``../data/tiny_csv/`` beside it."""
    data = tmp_path / "data" / "tiny_csv"
    data.mkdir(parents=True)
    for split in ("train", "valid", "test"):
        (data / f"{split}_sample.csv").symlink_to(DEMO / f"{split}_sample.csv")
    (tmp_path / "demo").mkdir()
    return tmp_path / "demo"


def demo_config(number: int) -> tuple[Path, str]:
    path = DEMO / "configs" / f"example{number}_config" / "dataset_config.yaml"
    return path, path.read_text().split(":")[0].splitlines()[-1]  # its one dataset id


def train_column(name: str) -> list[str]:
    with (DEMO / "train_sample.csv").open() as handle:
        return [row[name] for row in csv.DictReader(handle)]


@pytest.mark.parametrize("number", sorted(DEMO_OUTCOMES))
def test_demo_config_prepares_or_names_the_key(
    number: int, root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config, dataset_id = demo_config(number)
    out = root / "store"
    code = main(["data", "prepare", "--fuxictr-config", str(config), "--dataset-id", dataset_id,
                 "--fuxictr-root", str(root), "--out", str(out)])
    expected = DEMO_OUTCOMES[number]
    if expected is None:
        assert code == 0
        store = EncodedStore.open(out)
        assert [f.name for f in store.feature_map.features] == TAOBAO_FIELDS
        for feature in store.feature_map.features:  # distinct train values + padding + OOV
            assert feature.vocab_size == len(set(train_column(feature.name))) + 2
        assert {k: v["rows"] for k, v in store.meta["splits"].items()} == {
            "train": 100, "valid": 100, "test": 100}
        return
    assert code == 2
    err = capsys.readouterr().err
    assert f"dataset {dataset_id!r}" in err
    for words in expected:
        assert words in err
    assert not out.exists()


def test_paths_resolve_from_the_current_directory(
    root: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, dataset_id = demo_config(1)
    with pytest.raises(DataError, match="--fuxictr-root DIR") as err:
        load_dataset(config, dataset_id)  # run from elsewhere, the data is not found
    assert "train_data" in str(err.value)
    monkeypatch.chdir(root)
    dataset = load_dataset(config, dataset_id)
    assert dataset.inputs == tuple((root.parent / "data" / "tiny_csv" / f"{s}_sample.csv")
                                   for s in ("train", "valid", "test"))
    assert dataset.notes == ("key 'data_root': ignored: the folder FuxiCTR writes its encoded "
                             "files to; the store goes to --out",)


def test_shared_history_prepares_one_vocabulary_and_trains_din(root: Path) -> None:
    config = root / "dataset_config.yaml"
    config.write_text(TAOBAO_DIN)
    store_dir = root / "store"
    assert main(["data", "prepare", "--fuxictr-config", str(config), "--dataset-id",
                 "taobao_din", "--fuxictr-root", str(root), "--out", str(store_dir)]) == 0
    store = EncodedStore.open(store_dir)
    features = {f.name: f for f in store.feature_map.features}
    assert "time_stamp" not in features  # active: false
    history, target = features["click_sequence"], features["adgroup_id"]
    assert (history.share_with, history.max_len) == ("adgroup_id", 5)
    # one vocabulary: the union of the train ad groups and clicked ad groups (the empty
    # history a value of its own), padding and OOV
    tokens = set(train_column("adgroup_id")) | {
        t for s in train_column("click_sequence") for t in s.split("^")}
    assert history.vocab_size == target.vocab_size == len(tokens) + 2 == 97
    vocabs = store.encoder.to_dict()["vocabs"]
    assert "click_sequence" not in vocabs  # the owner's vocabulary serves both
    assert set(vocabs["adgroup_id"]["values"]) == tokens
    # equal raw values, equal ids: row 0 clicked 170301 then 573514, both ad groups of rows
    train = store.split("train")
    ad_ids = dict(zip(train_column("adgroup_id"), train.categorical[:, 1].tolist(),
                      strict=True))
    assert train_column("click_sequence")[0] == "170301^573514"
    assert train.sequences[0][0].tolist() == [ad_ids["170301"], ad_ids["573514"], 0, 0, 0]
    names = [f.name for f in store.feature_map.features]
    pairs = BehaviourPairs.of(store.feature_map, names.index)  # what DIN attends over
    assert (pairs.history_fields, pairs.target_fields) == (
        (names.index("click_sequence"),), (names.index("adgroup_id"),))
    run = root / "run"
    assert main(["train", "--data", str(store_dir), "--model", "din", "--out", str(run),
                 "--epochs", "1", "--set", "train.batch_size=50",
                 "--set", "model_config.hidden_units=[8]",
                 "--set", "model_config.attention_units=[4]",
                 "--set", "model_config.embedding_dim=4"]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["test"]["din"]["logloss"])
    assert metrics["valid"] == metrics["test"]  # FuxiCTR's demo valid and test files are equal


def test_printed_schema_prepares_the_identical_store(
    root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = root / "dataset_config.yaml"
    config.write_text(TAOBAO_DIN)
    fuxictr_args = ["--fuxictr-config", str(config), "--dataset-id", "taobao_din",
                    "--fuxictr-root", str(root)]
    assert main(["data", "prepare", *fuxictr_args, "--out", str(root / "from_config")]) == 0
    capsys.readouterr()
    assert main(["data", "schema", *fuxictr_args]) == 0
    printed = capsys.readouterr().out
    assert "  - {name: click_sequence, type: sequence, separator: ^, max_len: 5, " \
           "share_vocab: adgroup_id}" in printed
    schema = root / "schema.yaml"
    schema.write_text(printed)
    inputs = [str(root.parent / "data" / "tiny_csv" / f"{s}_sample.csv")
              for s in ("train", "valid", "test")]
    assert main(["data", "prepare", "--format", "csv", "--schema", str(schema), "--split",
                 "files", *inputs, "--out", str(root / "from_schema")]) == 0
    ours, theirs = (EncodedStore.open(root / name) for name in ("from_schema", "from_config"))
    assert ours.encoder.to_dict() == theirs.encoder.to_dict()
    assert ours.meta["settings"] == theirs.meta["settings"]
    for split in ("train", "valid", "test"):
        a, b = ours.split(split), theirs.split(split)
        for name in ("categorical", "numeric", "label"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        for x, y in zip(a.sequences, b.sequences, strict=True):
            np.testing.assert_array_equal(x, y)


def test_every_refused_key_is_named_with_its_field(root: Path) -> None:
    config = root / "dataset_config.yaml"
    config.write_text("""\
odd:
    train_data: ../data/tiny_csv/train_sample.csv
    valid_data: ../data/tiny_csv/valid_sample.csv
    valid_size: 0.1
    shuffle_rows: true
    feature_cols:
        - {name: click_sequence, type: sequence, padding: pre}
        - {name: price, type: numeric, normalizer: MinMaxScaler}
        - {name: userid, type: categorical, fill_na: "0", embedding_dim: 8}
        - {name: pid, type: numeric, preprocess: convert_to_bucket}
    label_col: [{name: clk, dtype: float}, {name: buy, dtype: float}]
""")
    with pytest.raises(ConfigError) as err:
        load_dataset(config, "odd", root)
    message = str(err.value)
    for words in ("key 'valid_size': FuxiCTR splits train_data itself",
                  "key 'shuffle_rows': not a FuxiCTR dataset key",
                  "field 'click_sequence', key 'padding': 'pre'",
                  "field 'price', key 'normalizer': 'MinMaxScaler'",
                  "field 'userid', key 'fill_na'",
                  "field 'pid', key 'preprocess': convert_to_bucket makes numbers the ids of a "
                  "categorical field",
                  "key 'label_col': 2 labels"):
        assert words in message
    assert "embedding_dim" not in message  # a note, not a refusal


def test_notes_name_what_differs(root: Path) -> None:
    config = root / "dataset_config.yaml"
    config.write_text("""\
notes:
    data_format: csv
    train_data: ../data/tiny_csv/train_sample.csv
    valid_data: ../data/tiny_csv/valid_sample.csv
    feature_cols:
        - {name: userid, type: categorical, dtype: int, embedding_dim: 8}
        - {name: price, type: numeric, dtype: float}
    label_col: {name: clk, dtype: float}
""")
    dataset = load_dataset(config, "notes", root)
    assert len(dataset.inputs) == 2  # no test_data: train and valid only
    assert [note.split(":")[0] for note in dataset.notes] == [
        "field 'userid', key 'dtype'", "field 'userid', key 'embedding_dim'",
        "field 'price', key 'normalizer'"]


def test_unknown_dataset_and_conflicting_flags(
    root: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config, _ = demo_config(1)
    with pytest.raises(ConfigError, match="no dataset 'tiny'; its datasets: tiny_example1"):
        load_dataset(config, "tiny", root)
    assert main(["data", "prepare", "--fuxictr-config", str(config), "--dataset-id",
                 "tiny_example1", "--format", "csv", "--min-count", "2",
                 "--out", str(root / "store")]) == 2
    assert "leave out --format, --min-count" in capsys.readouterr().err


# BARS Criteo_x4 as FuxiCTR describes it (its Criteo_x4 dataset config, two fields of each kind)
CRITEO_X4 = """\
criteo_x4:
    data_format: csv
    train_data: criteo/train.csv
    valid_data: criteo/valid.csv
    test_data: criteo/test.csv
    min_categr_count: 1
    feature_cols:
        - {name: [I1, I2], active: True, dtype: float, type: categorical,
           preprocess: convert_to_bucket, fill_na: 0}
        - {name: [C1, C2], active: True, dtype: str, type: categorical, fill_na: ""}
    label_col: {name: Label, dtype: float}
"""


def test_criteo_x4_buckets_its_integer_fields_after_filling_the_missing_ones(
    tmp_path: Path,
) -> None:
    """``convert_to_bucket`` with ``fill_na: 0``: I1 = 5, "", 1, 100, 2.5 becomes buckets
    floor(ln(5)^2) = 2, 0 (filled), 1, floor(ln(100)^2) = 21, floor(ln(2.5)^2) = 0; text
    fields keep a missing value a value of its own."""
    data = tmp_path / "criteo"
    data.mkdir()
    rows = ["Label,I1,I2,C1,C2", "1,5,3,a,", "0,,7,b,x", "1,1,,a,y", "0,100,3,,x", "1,2.5,0,b,y"]
    for split in ("train", "valid", "test"):
        (data / f"{split}.csv").write_text("\n".join(rows) + "\n")
    config = tmp_path / "dataset_config.yaml"
    config.write_text(CRITEO_X4)
    assert main(["data", "prepare", "--fuxictr-config", str(config), "--dataset-id",
                 "criteo_x4", "--fuxictr-root", str(tmp_path), "--out", str(tmp_path / "s")]) == 0
    store = EncodedStore.open(tmp_path / "s")
    vocab = store.encoder.vocabs["I1"].to_pylist()
    codes = store.split("train").categorical[:, 0]
    assert [vocab[code - 2] for code in codes] == [2, 0, 1, 21, 0]
    i2 = store.encoder.vocabs["I2"].to_pylist()
    # I2 = 3, 7, "", 3, 0: floor(ln(3)^2) = 1, floor(ln(7)^2) = 3, 0 (filled), 1, 0
    assert [i2[code - 2] for code in store.split("train").categorical[:, 1]] == [1, 3, 0, 1, 0]
    assert len(store.encoder.vocabs["C1"]) == 3  # a, b and the missing value
