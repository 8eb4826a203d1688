"""The input of a scoring job: a CSV/TSV file, a Parquet file or a folder of Parquet files,
read in bounded chunks, with relative paths joined to the input's folder and id columns typed
once for the whole job."""

from __future__ import annotations

import re
from pathlib import Path

from ..manifest import path_columns, resolve_paths
from ._common import ScoringError, _exc_text


def _natural_key(path) -> list:
    """Sort key putting ``part-2`` before ``part-10`` (the order Dask reads files in)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


class _Input:
    """A CSV file, a Parquet file, or a folder of Parquet files, read in bounded chunks."""

    def __init__(self, path):
        self.path = Path(path).expanduser().absolute()
        self.id_cols, self.path_cols = [], []
        # Relative paths in a table mean "relative to the table's folder" (mmfeat.read_manifest).
        self.base_dir = self.path if self.path.is_dir() else self.path.parent
        p = self.path
        if not p.exists():
            raise ScoringError(f"input not found: {p}")
        if not (p.is_dir() or p.is_file()):  # reading a FIFO would wait for a writer forever
            raise ScoringError(f"input {p} is not a regular file or a folder (a FIFO, device or "
                               "socket)")
        try:
            if p.is_dir():
                self.kind = "parquet"
                files = [
                    f for f in p.rglob("*")
                    if f.is_file() and f.suffix in (".parquet", ".pq")
                    and not any(part.startswith(("_", ".")) for part in f.relative_to(p).parts)
                ]
                self.files = sorted(files, key=_natural_key)
                if not self.files:
                    raise ScoringError(f"input folder {p} holds no Parquet files (*.parquet, *.pq)")
            elif p.suffix in (".parquet", ".pq"):
                self.kind, self.files = "parquet", [p]
            else:
                self.kind, self.files = "csv", [p]
            self._inspect()
        except ScoringError:
            raise
        except Exception as exc:
            raise ScoringError(f"cannot read input {p}: {_exc_text(exc)}") from exc

    def _inspect(self):
        if self.kind == "parquet":
            import pyarrow.parquet as pq

            total, names, nbytes = 0, None, 0
            for f in self.files:
                meta = pq.ParquetFile(f).metadata
                total += meta.num_rows
                nbytes += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
                if names is None:
                    names = [n for n in pq.read_schema(f).names
                             if not n.startswith("__index_level_")]
            self.columns, self.total, self.total_exact = names, total, True
            self.bytes_per_row = nbytes / total if total else 100.0
        else:

            self.sep = "\t" if self.path.suffix in (".tsv", ".tab") else ","
            self.columns = self._csv_header()
            self.total, self.total_exact = self._count_lines(), False
            size = self.path.stat().st_size
            self.bytes_per_row = size / self.total if self.total else 100.0
        self.find_path_columns(None)

    def _csv_header(self) -> list:
        """The column names of a CSV. Read with the csv module: pandas takes minutes for the
        header of a million columns (it builds an empty column for each)."""
        import csv

        import pandas as pd

        if self.path.suffix not in (".gz", ".bz2", ".xz", ".zst", ".zip"):
            with open(self.path, newline="", encoding="utf-8", errors="replace") as f:
                names = next(csv.reader(f, delimiter=self.sep), [])
            if names and len(set(names)) == len(names) and all(names):
                return names
        # compressed, or names pandas would rename (duplicates, blanks): pandas' own reading
        return list(pd.read_csv(self.path, nrows=0, sep=self.sep).columns)

    def find_path_columns(self, columns):
        """Which of ``columns`` (None: all) hold file paths, from the first rows; called again
        with the columns a job reads, so that a table of a million columns is never parsed
        whole."""
        self.path_cols = path_columns(self._head(columns=columns), self.base_dir)

    def _head(self, n=1000, columns=None):
        import pandas as pd

        if self.kind == "csv":
            if columns is None and len(self.columns) > 1000:
                return pd.DataFrame()  # the job's own columns are looked at once known
            return pd.read_csv(self.path, sep=self.sep, nrows=n, usecols=columns)
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(self.files[0]).iter_batches(batch_size=n, columns=columns):
            return batch.to_pandas()
        return pd.DataFrame(columns=self.columns)

    def id_types(self, id_cols) -> dict:
        """The Arrow type of each id column, the same for every part. A Parquet file's ids
        keep the type of its schema. A CSV's id column is read whole, as text, once: it is
        an integer column when every value is a plain integer (nulls allowed), else text as
        written (``"00001"`` stays ``"00001"``)."""
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self.kind != "csv":
            schema = pq.read_schema(self.files[0])
            return {c: schema.field(c).type for c in id_cols}
        if not id_cols:
            return {}
        plain = dict.fromkeys(id_cols, True)
        reader = pd.read_csv(self.path, sep=self.sep, usecols=id_cols, dtype="string",
                             chunksize=200_000)
        with reader:
            for frame in reader:
                for c in id_cols:
                    if plain[c]:
                        values = frame[c].dropna()
                        plain[c] = bool(values.str.fullmatch(r"[+-]?(0|[1-9][0-9]{0,17})").all())
        return {c: pa.int64() if plain[c] else pa.string() for c in id_cols}

    def prepare(self, frame):
        """A chunk as the model sees it: relative paths joined to the input's folder."""
        return resolve_paths(frame, self.base_dir, self.path_cols)

    def _count_lines(self):
        """Data rows of a CSV, counted as lines (exact unless quoted fields hold newlines)."""
        if self.path.suffix in (".gz", ".bz2", ".xz", ".zst", ".zip"):
            return None
        n, last = 0, b"\n"
        with open(self.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                n += block.count(b"\n")
                last = block[-1:]
        n += last != b"\n"
        return max(n - 1, 0)

    def identity(self) -> dict:
        files = []
        for f in self.files:
            st = f.stat()
            files.append([str(f.relative_to(self.path)) if f != self.path else f.name,
                          st.st_size, st.st_mtime_ns])
        return {"path": str(self.path), "kind": self.kind, "files": files}

    def chunks(self, chunk_size: int, columns=None):
        """Yield ``(index, DataFrame)`` of ``chunk_size`` rows (the last may be shorter)."""
        index = 0
        try:
            if self.kind == "csv":
                import pandas as pd

                reader = pd.read_csv(self.path, sep=self.sep, chunksize=chunk_size, usecols=columns,
                                     dtype={c: "string" for c in self.id_cols})
                with reader:
                    for frame in reader:
                        yield index, self.prepare(frame)
                        index += 1
            else:
                for index, frame in self._parquet_chunks(chunk_size, columns):
                    yield index, self.prepare(frame)
        except ScoringError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            raise ScoringError(
                f"cannot read input {self.path} after {index} chunks of {chunk_size} rows: "
                f"{_exc_text(exc)}"
            ) from exc

    def _parquet_chunks(self, chunk_size, columns):
        import pandas as pd
        import pyarrow.parquet as pq

        pending, buffered, index = [], 0, 0

        def emit(n):
            nonlocal pending, buffered
            take, rest, got = [], [], 0
            for batch in pending:
                if got >= n:
                    rest.append(batch)
                elif got + batch.num_rows <= n:
                    take.append(batch)
                    got += batch.num_rows
                else:
                    k = n - got
                    take.append(batch.slice(0, k))
                    rest.append(batch.slice(k))
                    got = n
            pending, buffered = rest, buffered - got
            frames = [b.to_pandas() for b in take]
            return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

        for f in self.files:
            pf = pq.ParquetFile(f)
            cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
            for batch in pf.iter_batches(batch_size=chunk_size, columns=cols):
                pending.append(batch)
                buffered += batch.num_rows
                while buffered >= chunk_size:
                    yield index, emit(chunk_size)
                    index += 1
        if buffered:
            yield index, emit(buffered)
