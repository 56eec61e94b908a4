"""Connectors: local folders, DuckDB files and S3 (against a local moto server), reading, writing and
the errors for a missing location, a table not in the connector and refused S3 credentials."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pql
from pql.errors import PQLDataError, PQLRunError
from pql.sdk.connectors import DuckDBConnector, LocalConnector, S3Connector

SYNTHETIC = Path(__file__).resolve().parent.parent / "examples" / "synthetic"
SMALL = pa.table({"user_id": [1, 2, 3], "name": ["a", "b", "c"]})


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("users", "items"):
        shutil.copy(SYNTHETIC / f"{name}.parquet", tmp_path / f"{name}.parquet")
    (tmp_path / "regions.csv").write_text("region_id,name\n1,north\n2,south\n")
    (tmp_path / "notes.txt").write_text("not a table")
    return tmp_path


# -- local --------------------------------------------------------------------------------------------
def test_local_lists_reads_parquet_and_csv(folder: Path) -> None:
    c = pql.LocalConnector(folder)
    assert c.table_names() == ["items", "regions", "users"]
    assert "users" in c and "notes" not in c
    users = c["users"]
    assert users is not c.table("users") and users.name == "users" and users.format == "parquet"
    assert users.path == (folder / "users.parquet").resolve()
    assert users.to_arrow().equals(pq.read_table(folder / "users.parquet"))
    regions = c.table("regions")
    assert regions.format == "csv" and regions.columns == ["region_id", "name"]
    assert regions.to_arrow().column("name").to_pylist() == ["north", "south"]
    assert list(users.head(2)["user_id"]) == pq.read_table(folder / "users.parquet").column("user_id").to_pylist()[:2]


def test_local_missing_folder_and_file_path(tmp_path: Path) -> None:
    with pytest.raises(PQLDataError) as e:
        LocalConnector(tmp_path / "nope")
    assert e.value.code == "E721" and "nope" in e.value.message and "not found" in e.value.message
    (tmp_path / "users.parquet").write_bytes(b"x")
    with pytest.raises(PQLDataError) as e:
        LocalConnector(tmp_path / "users.parquet")
    assert e.value.code == "E721" and "is a file" in e.value.message
    assert str(tmp_path) in e.value.hints[0]


def test_local_unknown_table_suggests(folder: Path) -> None:
    with pytest.raises(PQLDataError) as e:
        LocalConnector(folder)["usres"]
    assert e.value.code == "E722"
    assert "table 'usres' not found in LocalConnector" in e.value.message
    assert "did you mean 'users'?" in e.value.message
    assert e.value.hints == ("available: items, regions, users",)


def test_local_empty_folder_says_so(tmp_path: Path) -> None:
    with pytest.raises(PQLDataError) as e:
        LocalConnector(tmp_path).table("users")
    assert e.value.code == "E722" and "holds no tables" in e.value.hints[0]


def test_local_two_files_for_one_table(folder: Path) -> None:
    (folder / "users.csv").write_text("user_id\n1\n")
    with pytest.raises(PQLDataError) as e:
        LocalConnector(folder).table_names()
    assert e.value.code == "E714" and "users" in e.value.message


def test_local_unreadable_file(folder: Path) -> None:
    (folder / "broken.parquet").write_bytes(b"not parquet at all")
    with pytest.raises(PQLDataError) as e:
        LocalConnector(folder)["broken"].to_arrow()
    assert e.value.code == "E702" and "broken" in e.value.message


def test_local_write_table_round_trip(folder: Path) -> None:
    c = LocalConnector(folder)
    where = c.write_table("out", SMALL)
    assert Path(where) == (folder / "out.parquet").resolve()
    assert pq.read_table(where).equals(SMALL)
    c.write_table("out", SMALL.slice(0, 1))  # replaces
    assert c["out"].to_arrow().num_rows == 1
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_local_write_pandas_and_bad_names(folder: Path) -> None:
    c = LocalConnector(folder)
    c.write_table("from_pandas", SMALL.to_pandas())
    assert c["from_pandas"].to_arrow().column("name").to_pylist() == ["a", "b", "c"]
    for bad in ("../escape", "a/b", ""):
        with pytest.raises(PQLRunError) as e:
            c.write_table(bad, SMALL)
        assert e.value.code == "E602"
    with pytest.raises(PQLRunError) as e:
        c.write_table("regions", SMALL)  # regions.csv would make the table ambiguous
    assert e.value.code == "E612"
    with pytest.raises(PQLRunError):
        c.write_table("x", [1, 2])


# -- DuckDB -------------------------------------------------------------------------------------------
@pytest.fixture
def dbfile(tmp_path: Path) -> Path:
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE users AS SELECT range AS user_id, 'u' || range AS name FROM range(5)")
    con.execute("CREATE VIEW \"odd users\" AS SELECT * FROM users WHERE user_id % 2 = 1")
    con.close()
    return path


def test_duckdb_lists_and_reads(dbfile: Path) -> None:
    c = pql.DuckDBConnector(dbfile)
    assert c.table_names() == ["odd users", "users"]
    t = c["odd users"].to_arrow()
    assert t.column("user_id").to_pylist() == [1, 3]
    assert c["users"].columns == ["user_id", "name"]
    assert c["users"].to_arrow(["name"]).column_names == ["name"]
    assert c["users"].path is None  # loaded through DuckDB, not read in place


def test_duckdb_write_creates_and_replaces(dbfile: Path) -> None:
    c = DuckDBConnector(dbfile)
    c.write_table("predictions; DROP TABLE users", SMALL)  # a name, never SQL
    assert "users" in c.table_names()
    assert c["predictions; DROP TABLE users"].to_arrow().equals(SMALL)
    c.write_table("predictions; DROP TABLE users", SMALL.slice(0, 2))
    assert c["predictions; DROP TABLE users"].to_arrow().num_rows == 2


def test_duckdb_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(PQLDataError) as e:
        DuckDBConnector(tmp_path / "none.duckdb")
    assert e.value.code == "E721" and "none.duckdb" in e.value.message
    bad = tmp_path / "bad.duckdb"
    bad.write_text("this is not a database")
    with pytest.raises(PQLDataError) as e:
        DuckDBConnector(bad)
    assert e.value.code == "E702"


def test_duckdb_unknown_table(dbfile: Path) -> None:
    with pytest.raises(PQLDataError) as e:
        DuckDBConnector(dbfile).table("user")
    assert e.value.code == "E722" and "did you mean 'users'?" in e.value.message


# -- S3 (moto server on the loopback address) -------------------------------------------------------------
@pytest.fixture(scope="module")
def s3():
    moto_server = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    requests = pytest.importorskip("requests")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id="testing", aws_secret_access_key="testing",
                          region_name="us-east-1")
    client.create_bucket(Bucket="shop")
    client.upload_file(str(SYNTHETIC / "users.parquet"), "shop", "data/users.parquet")
    client.put_object(Bucket="shop", Key="data/regions.csv", Body=b"region_id,name\n1,north\n2,south\n")
    client.put_object(Bucket="shop", Key="data/readme.txt", Body=b"not a table")
    client.put_object(Bucket="shop", Key="other/items.parquet", Body=b"elsewhere")

    def set_auth(count: str) -> None:
        requests.post(f"{url}/moto-api/reset-auth", data=count.encode(), timeout=10).raise_for_status()

    yield {"url": url, "client": client, "set_auth": set_auth}
    server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


def test_s3_lists_and_reads(s3, aws_env) -> None:
    c = pql.S3Connector("s3://shop/data/", endpoint_url=s3["url"])
    assert repr(c) == "S3Connector('s3://shop/data')"
    assert c.table_names() == ["regions", "users"]
    users = c["users"]
    assert users.location == "s3://shop/data/users.parquet" and users.path is None
    assert users.to_arrow().equals(pq.read_table(SYNTHETIC / "users.parquet"))
    assert c["regions"].to_arrow().column("region_id").to_pylist() == [1, 2]
    assert c["users"].columns[0] == "user_id"


def test_s3_write_table(s3, aws_env) -> None:
    c = S3Connector("s3://shop/out", endpoint_url=s3["url"])
    assert c.table_names() == []  # an empty prefix is fine for output
    assert c.write_table("preds", SMALL) == "s3://shop/out/preds.parquet"
    body = s3["client"].get_object(Bucket="shop", Key="out/preds.parquet")["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).equals(SMALL)
    assert c.table_names() == ["preds"]


def test_s3_missing_bucket_and_table(s3, aws_env) -> None:
    with pytest.raises(PQLDataError) as e:
        S3Connector("s3://no-such-bucket/data", endpoint_url=s3["url"])
    assert e.value.code == "E721" and "no-such-bucket" in e.value.message
    with pytest.raises(PQLDataError) as e:
        S3Connector("s3://shop/data", endpoint_url=s3["url"]).table("user")
    assert e.value.code == "E722" and "did you mean 'users'?" in e.value.message
    with pytest.raises(PQLDataError) as e:
        S3Connector("s3://shop/typo", endpoint_url=s3["url"]).table("users")
    assert e.value.code == "E722" and "no .parquet or .csv objects" in e.value.hints[0]


def test_s3_bad_locations() -> None:
    for bad in ("shop/data", "s3:/shop", "", "http://shop"):
        with pytest.raises(PQLDataError) as e:
            S3Connector(bad)
        assert e.value.code == "E721" and "s3://bucket/prefix" in e.value.message
    with pytest.raises(PQLDataError) as e:
        S3Connector("s3://shop", endpoint_url="localhost:9000")
    assert e.value.code == "E721" and "endpoint_url" in e.value.message


def test_s3_refused_credentials(s3, aws_env) -> None:
    ok = S3Connector("s3://shop/data", endpoint_url=s3["url"])
    s3["set_auth"]("0")  # from now on the server checks keys; 'testing' is no known key
    try:
        with pytest.raises(PQLDataError) as e:
            S3Connector("s3://shop/data", endpoint_url=s3["url"])
        assert e.value.code == "E723"
        assert "S3 refused access to 's3://shop/data'" in e.value.message
        assert "AWS_ACCESS_KEY_ID" in e.value.hints[0]
        for action in (ok.table_names, lambda: ok.write_table("x", SMALL)):
            with pytest.raises(PQLDataError) as e:
                action()
            assert e.value.code == "E723"
    finally:
        s3["set_auth"]("inf")
    assert ok.table_names() == ["regions", "users"]  # access works again
