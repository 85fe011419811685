"""The CSV reader: pyarrow parses pieces of whole lines on parallel threads, in bounded memory.

Column types come from the schema (or every column is text, for inference). When pyarrow fails, or a
batch looks wrong (binary values, a line break that may be an unclosed quote), the reader asks
``mlci.ml.tabular.hostile`` for the exact line. A column whose values do not convert is read again as
text and converted here (lenient reading, or no schema); a quoted value holding a line break that
crosses a piece's end makes the reader start again, block by block, following the quoting.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from mlci.core.csvoptions import CsvOptions
from mlci.core.dataschema import DataSchema
from mlci.ml.tabular.hostile import check_header, csv_header, diagnose, diagnose_conversion, is_utf8
from mlci.ml.tabular.lines import SAMPLE_BYTES, pieces_of_lines, refuse_nul_bytes
from mlci.ml.tabular.values import FALSE_VALUES, NULL_VALUES, TRUE_VALUES, ArrowBatch, convert_text, target_type

_MAX_PIECE = 4 << 20  # bytes of a piece of a CSV file, parsed as one block into one batch
_PIECES_AHEAD = max(2, min(pa.cpu_count(), 4))  # pieces parsed at the same time, one per core, while the
# caller works on the current one
_PIECES_AT_START = 4  # parsed while the caller is still getting ready (see ``CsvReader.start``)
_CATEGORY = pa.dictionary(pa.int32(), pa.string())
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): .*CSV conversion error")


class CsvReader:
    """Streams a CSV with pyarrow, piece by piece; on a parse error, a slow exact scan finds the line."""

    def __init__(self, path: Path, options: CsvOptions, schema: DataSchema | None, batch_rows: int,
                 columns: list[str] | None, lenient: bool, text: bool = False,
                 dictionary_categories: bool = False) -> None:
        self.path = path
        self.options = options
        self.text = text
        self.schema = schema
        self.batch_rows = batch_rows
        self.columns = columns
        self.lenient = lenient
        self.dictionary_categories = dictionary_categories
        self.as_text: set[str] = set()  # columns read as text and converted here (their values failed)
        self.rows_yielded = 0  # a restart skips these rows
        self.newlines_in_values = False  # set when a quoted value with a line break crosses a piece's end
        self._header: list[str] = []
        self._started: _PieceParser | None = None  # pieces parsing since ``start``, not yet iterated

    def start(self) -> None:
        """Check the header and start parsing the file's first pieces on worker threads, now: the caller
        can do other work (imports, compiling rules) while they are parsed; iterating continues from them."""
        if self._started is None:
            self._header = csv_header(self.path, self.options)
            check_header(self.path, self._header)
            self._started = self._piece_parser(self._header)

    def __iter__(self) -> Iterator[ArrowBatch]:
        self.start()
        while True:
            try:
                yield from self._read(self._header)
                return
            except _Restart:
                continue

    def _read(self, header: list[str]) -> Iterator[ArrowBatch]:
        first_row = 1
        batch = None
        for batch in self._parsed_batches(header):
            seen = self.rows_yielded - first_row + 1  # rows of this batch already yielded before a restart
            first_row += batch.num_rows
            if seen >= batch.num_rows:
                continue
            item = ArrowBatch(first_row - batch.num_rows + max(seen, 0), batch.slice(max(seen, 0)))
            self._check_binary(self._convert_text_columns(item))
            self.rows_yielded += item.batch.num_rows
            yield item
        if batch is not None:
            self._check_unclosed_quote(batch)

    def _parsed_batches(self, header: list[str]) -> Iterator[pa.RecordBatch]:
        """Each piece of the file parsed as one block, one batch per piece.

        pyarrow's streaming reader parses one block at a time; its whole-file reader parses blocks in
        parallel but holds the whole table. Pieces of whole lines, each parsed as one block on its own
        thread (without the GIL), get a parallel parse in bounded memory, and the next pieces are parsed
        while the caller works on this one's batch (see ``_PieceParser``).
        """
        if self.newlines_in_values:
            yield from self._streamed_batches(header)
            return
        parser, self._started = self._started, None  # a restart parses afresh
        for table in (parser or self._piece_parser(header)).tables():
            yield from table.to_batches()

    def _piece_parser(self, header: list[str]) -> _PieceParser:
        return _PieceParser(self, header, self._piece_size(), self._declared_types(header))

    def _declared_types(self, header: list[str]) -> dict[str, pa.DataType] | None:
        """The Arrow type of every column read, when the schema gives them all (else None: the first
        piece's parse decides the rest)."""
        types = self._column_types(header)
        read = [n for n in header if self.columns is None or n in self.columns]
        return {n: types[n] for n in read} if all(n in types for n in read) else None

    def _parse(self, piece: pa.Buffer, header: list[str], types: dict[str, pa.DataType] | None,
               first: bool) -> pa.Table:
        """One piece, as one block on this thread (other pieces are parsed on other threads); the first
        piece starts with the header, later ones with data."""
        read_options = pa_csv.ReadOptions(block_size=piece.size + 1, use_threads=False, encoding=self._encoding(),
                                          column_names=None if first else header)
        convert_options = self._convert_options(header, types)
        unread = [n for n in header if self.columns is not None and n not in self.columns]
        if unread and _holds_a_quote(piece):
            # A quoted value of a column not read may hold a line break across the piece's end: those
            # columns are read as text too, for ``_check_piece_end``, after the others (so that an error's
            # column number keeps its meaning); ``_PieceParser.tables`` drops them.
            convert_options.include_columns = [*convert_options.include_columns, *unread]
            convert_options.column_types = {**convert_options.column_types, **dict.fromkeys(unread, pa.string())}
        return pa_csv.read_csv(piece, read_options=read_options, parse_options=self._parse_options(),
                               convert_options=convert_options)

    def _table(self, parsing: Future, header: list[str]) -> pa.Table:
        try:
            return parsing.result()
        except pa.ArrowInvalid as exc:
            self._on_arrow_error(exc, header)
            raise  # not reached: _on_arrow_error always raises

    def _streamed_batches(self, header: list[str]) -> Iterator[pa.RecordBatch]:
        """Block by block with line breaks inside quoted values: only a parse that follows the quoting
        can tell where a block may end, so the file cannot be cut into pieces."""
        refuse_nul_bytes(self.path)
        try:
            reader = pa_csv.open_csv(
                str(self.path),
                read_options=pa_csv.ReadOptions(block_size=self._piece_size(), encoding=self._encoding()),
                parse_options=self._parse_options(), convert_options=self._convert_options(header))
            yield from reader
        except pa.ArrowInvalid as exc:
            self._on_arrow_error(exc, header)

    def _check_piece_end(self, table: pa.Table) -> None:
        """A piece cut inside a quoted value that holds a line break: pyarrow takes the rest of the piece
        into that value, which then ends with the piece's last line break. Read again, following the
        quoting (a value that truly ends with a line break on a piece's last row is read again too: that
        costs time only). Checked before any row of the piece is yielded."""
        if table.num_rows and any(_ends_with_line_break(column) for column in table.columns):
            self.newlines_in_values = True
            raise _Restart()

    def _check_unclosed_quote(self, last: pa.RecordBatch) -> None:
        """An unclosed quote swallows the rest of the file into the last batch's text values."""
        import pyarrow.compute as pc  # here, not at the top: the parse starts before this import

        for column in last.columns:
            if pa.types.is_string(column.type) and pc.any(pc.match_substring(column, "\n")).as_py():
                problem = diagnose(self.path, self.options, None)
                if problem is not None:  # else: legitimate line breaks inside quoted values
                    raise problem
                return

    def _convert_options(self, header: list[str], types: dict[str, pa.DataType] | None = None
                         ) -> pa_csv.ConvertOptions:
        if types is None:
            types = self._column_types(header)
        include = [n for n in header if n in self.columns] if self.columns is not None else None
        return pa_csv.ConvertOptions(
            column_types=types, null_values=NULL_VALUES, strings_can_be_null=True, true_values=TRUE_VALUES,
            false_values=FALSE_VALUES, decimal_point=self.options.decimal, include_columns=include,
            timestamp_parsers=None)

    def _column_types(self, header: list[str]) -> dict[str, pa.DataType]:
        """The Arrow type the schema gives each column (columns it does not type are left out)."""
        types = {}
        for name in header:
            target = pa.string() if self.text or name in self.as_text else target_type(self.schema, name)
            if self.dictionary_categories and target == pa.string() and self._is_category(name):
                target = _CATEGORY  # encoded while the blocks are parsed, in parallel
            if target is not None:
                types[name] = target
        return types

    def _is_category(self, name: str) -> bool:
        return self.schema is not None and name in self.schema.columns \
            and self.schema.columns[name].type == "category" and name not in self.as_text

    def _parse_options(self) -> pa_csv.ParseOptions:
        return pa_csv.ParseOptions(delimiter=self.options.delimiter, newlines_in_values=self.newlines_in_values)

    def _encoding(self) -> str:
        return "utf8" if is_utf8(self.options.encoding) else self.options.encoding

    def _piece_size(self) -> int:
        """Bytes per piece, and so per batch: ``batch_rows`` rows, at most _MAX_PIECE (a larger piece costs
        memory and, at the file's end, time on one core)."""
        with self.path.open("rb") as handle:
            sample = handle.read(SAMPLE_BYTES)
        bytes_per_row = len(sample) / max(sample.count(b"\n"), sample.count(b"\r"), 1)
        return int(min(max(bytes_per_row * self.batch_rows, 1 << 16), _MAX_PIECE))

    def _on_arrow_error(self, exc: pa.ArrowInvalid, header: list[str]) -> None:
        match = _CONVERSION_ERROR.search(str(exc))
        if match and header and "invalid UTF8" not in str(exc):
            index = int(match.group(1))
            names = [n for n in header if self.columns is None or n in self.columns]
            name = names[index] if index < len(names) else header[index]
            # Without a schema, a column whose later values do not fit the type guessed from the first
            # block is read again as text, as a table of mixed values is: never a silent coercion.
            if (self.lenient or self.schema is None) and name not in self.as_text:
                self.as_text.add(name)
                raise _Restart()
            raise diagnose_conversion(self.path, self.options, header, name, self.schema) from None
        problem = diagnose(self.path, self.options, None)
        if problem is None and not self.newlines_in_values:
            # Sound CSV that pyarrow could not parse: a quoted value holding a line break crossed the
            # end of a piece or block. Read again, following the quoting.
            self.newlines_in_values = True
            raise _Restart()
        raise problem or diagnose(self.path, self.options, str(exc)) from None

    def _convert_text_columns(self, item: ArrowBatch) -> pa.RecordBatch:
        batch = item.batch
        for name in self.as_text:
            if name not in batch.schema.names or self.schema is None:
                continue
            index = batch.schema.get_field_index(name)
            converted, failures = convert_text(batch.column(index), self.schema.columns[name].type,
                                               decimal=self.options.decimal)
            if failures is not None:
                item.failures[name] = failures
            batch = batch.set_column(index, name, converted)
        item.batch = batch
        return batch

    def _check_binary(self, batch: pa.RecordBatch) -> None:
        if any(pa.types.is_binary(f.type) for f in batch.schema):
            raise diagnose(self.path, self.options, "invalid UTF-8")


def _holds_a_quote(piece: pa.Buffer) -> bool:
    return bool(np.any(np.frombuffer(piece, dtype=np.uint8) == ord('"')))


def _ends_with_line_break(column: pa.ChunkedArray) -> bool:
    """Whether a text column's last value ends with a line break."""
    if not (pa.types.is_string(column.type) or pa.types.is_dictionary(column.type)):
        return False
    last = column[len(column) - 1].as_py()
    return isinstance(last, str) and last.endswith(("\n", "\r"))


class _Restart(Exception):
    """Read the file again: a column's values failed to convert and will be read as text."""


class _PieceParser:
    """The file's pieces, parsed in order on ``_PIECES_AHEAD`` worker threads (one piece each, as one
    block), that many ahead of the caller: the cores parse while the caller works on the current piece.
    One block per piece makes one batch per piece, and so about half as many rule evaluations per file
    as pieces of two blocks parsed on pyarrow's threads did, for the same parse.

    When the schema gives every column's type, the first ``_PIECES_AT_START`` pieces are read and handed
    to the workers at once, before anyone asks for a batch. Otherwise the first piece is parsed alone and
    later pieces keep its column types, as pyarrow's streaming reader keeps its first block's: a value
    that does not fit is a conversion error.
    """

    def __init__(self, reader: CsvReader, header: list[str], piece_size: int,
                 types: dict[str, pa.DataType] | None) -> None:
        self.reader = reader
        self.header = header
        self.read = sum(reader.columns is None or n in reader.columns for n in header)  # columns yielded
        self.types = types
        self.pieces = pieces_of_lines(reader.path, piece_size)
        self.workers = ThreadPoolExecutor(max_workers=_PIECES_AHEAD)
        self.ahead: deque[Future] = deque()
        try:
            self._submit(first=True)
            if types is not None:
                self._fill(_PIECES_AT_START)
        except BaseException:  # a NUL byte in the first pieces: no workers left behind
            self.workers.shutdown(wait=True, cancel_futures=True)
            raise

    def tables(self) -> Iterator[pa.Table]:
        """Each piece's table, in the file's order."""
        try:
            while self.ahead:
                table = self.reader._table(self.ahead.popleft(), self.header)
                if self.types is None:
                    self.types = dict(zip(table.schema.names, table.schema.types))
                self._fill(_PIECES_AHEAD)  # before the caller works on this table
                if self.ahead:  # not the file's last piece
                    self.reader._check_piece_end(table)
                yield table.select(range(self.read)) if table.num_columns > self.read else table
        finally:
            self.workers.shutdown(wait=True, cancel_futures=True)

    def _fill(self, count: int) -> None:
        while len(self.ahead) < count and self._submit(first=False):
            pass

    def _submit(self, *, first: bool) -> bool:
        piece = next(self.pieces, None)
        if piece is None:
            return False
        self.ahead.append(self.workers.submit(self.reader._parse, piece, self.header, self.types, first))
        return True
