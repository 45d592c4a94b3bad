"""Read a Prisma schema into the PostgreSQL objects that Prisma would create for it.

Plain Python, no Prisma CLI: `parse_schema(text)` returns the expected tables (columns,
types, nullability, defaults, primary key, indexes, foreign keys) and enums, named the way
Prisma names them, so that the drift check can compare them with the live database and the
repair can create what is missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Identifiers longer than this are truncated by PostgreSQL; Prisma truncates its generated
# constraint and index names itself, keeping the suffix.
MAX_IDENTIFIER = 63

SCALAR_TYPES = {
    "String": "text",
    "Int": "integer",
    "BigInt": "bigint",
    "Float": "double precision",
    "Decimal": "numeric(65,30)",
    "Boolean": "boolean",
    "DateTime": "timestamp(3) without time zone",
    "Json": "jsonb",
    "Bytes": "bytea",
}

# @db.<Native>(args) -> the type as PostgreSQL's format_type() prints it.
NATIVE_TYPES = {
    "Text": "text",
    "Uuid": "uuid",
    "Integer": "integer",
    "SmallInt": "smallint",
    "BigInt": "bigint",
    "Oid": "oid",
    "DoublePrecision": "double precision",
    "Real": "real",
    "Money": "money",
    "Boolean": "boolean",
    "Date": "date",
    "JsonB": "jsonb",
    "Json": "json",
    "ByteA": "bytea",
    "Inet": "inet",
    "Xml": "xml",
    "Citext": "citext",
    "VarChar": "character varying{args}",
    "Char": "character{args}",
    "Bit": "bit{args}",
    "VarBit": "bit varying{args}",
    "Decimal": "numeric{args}",
    "Timestamp": "timestamp{args} without time zone",
    "Timestamptz": "timestamp{args} with time zone",
    "Time": "time{args} without time zone",
    "Timetz": "time{args} with time zone",
}

REFERENTIAL_ACTIONS = {
    "Cascade": "CASCADE",
    "Restrict": "RESTRICT",
    "NoAction": "NO ACTION",
    "SetNull": "SET NULL",
    "SetDefault": "SET DEFAULT",
}

INDEX_METHODS = {"BTree": "btree", "Hash": "hash", "Gist": "gist", "Gin": "gin", "SpGist": "spgist", "Brin": "brin"}

# Defaults that Prisma fills in the client, not in the database.
CLIENT_DEFAULTS = {"uuid", "cuid", "nanoid", "ulid"}


class SchemaError(ValueError):
    """The schema file cannot be read; the message names the line."""


@dataclass
class Column:
    name: str
    type: str
    nullable: bool
    default: tuple | None = None
    field: str = ""

    def describe(self) -> str:
        return f"{self.type}{'' if self.nullable else ' NOT NULL'}"


@dataclass
class Index:
    name: str
    columns: tuple[tuple[str, str], ...]  # (column, "ASC"|"DESC")
    unique: bool = False
    method: str = "btree"
    predicate: str = ""  # a partial index's WHERE (schema.prisma has none)

    @property
    def key(self) -> tuple:
        """What makes two indexes the same, whatever their names."""
        return (self.columns, self.unique, self.method, self.predicate)

    def describe(self) -> str:
        cols = ", ".join(c if s == "ASC" else f"{c} DESC" for c, s in self.columns)
        kind = "unique index" if self.unique else "index"
        method = "" if self.method == "btree" else f" using {self.method}"
        where = f" where {self.predicate}" if self.predicate else ""
        return f"{kind}{method} on ({cols}){where}"


@dataclass
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str
    on_update: str

    @property
    def key(self) -> tuple:
        return (self.columns, self.ref_table, self.ref_columns, self.on_delete, self.on_update)

    def describe(self) -> str:
        return (
            f"foreign key ({', '.join(self.columns)}) references {self.ref_table} ({', '.join(self.ref_columns)})"
            f" on delete {self.on_delete.lower()} on update {self.on_update.lower()}"
        )


@dataclass
class Table:
    name: str
    model: str
    columns: dict[str, Column] = field(default_factory=dict)
    primary_key: tuple[str, ...] = ()
    primary_key_name: str = ""
    indexes: list[Index] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)


@dataclass
class Schema:
    tables: dict[str, Table] = field(default_factory=dict)
    enums: dict[str, list[str]] = field(default_factory=dict)


# --------------------------------------------------------------------------- lexing


@dataclass
class Call:
    """A function call in an attribute argument: now(), dbgenerated("..."), created_at(sort: Desc)."""

    name: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Ident:
    name: str


@dataclass
class Attribute:
    name: str
    args: list = field(default_factory=list)
    kwargs: dict = field(default_factory=dict)


def _outside_strings(text: str, start: int = 0):
    """Yield (index, character) for every character of text outside Prisma string literals."""
    in_string = False
    i = start
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        else:
            yield i, ch
        i += 1


def _strip_comments(text: str) -> str:
    """Remove // and /// comments, leaving strings alone, and keep the line numbers."""
    out = []
    for line in text.splitlines():
        cut = next((i for i, _ in _outside_strings(line) if line.startswith("//", i)), None)
        out.append(line if cut is None else line[:cut])
    return "\n".join(out)


_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)|(?P<name>[A-Za-z_][\w.]*)|(?P<punct>[()\[\],:=]))'
)


class _ArgParser:
    """Recursive descent over an attribute's argument list."""

    def __init__(self, text: str, where: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        self.where = where
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise SchemaError(f"{where}: cannot read {text[pos:]!r}")
            kind = m.lastgroup or ""
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
            while pos < len(text) and text[pos].isspace():
                pos += 1
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise SchemaError(f"{self.where}: expected {value or 'a value'}, found {tok[1] if tok else 'the end'}")
        self.pos += 1
        return tok

    def arguments(self, closing: str | None) -> tuple[list, dict]:
        args: list = []
        kwargs: dict = {}
        while self.peek() is not None and (closing is None or self.peek()[1] != closing):  # type: ignore[index]
            tok = self.peek()
            nxt = self.tokens[self.pos + 1] if self.pos + 1 < len(self.tokens) else None
            if tok and tok[0] == "name" and nxt and nxt[1] == ":":
                self.pos += 2
                kwargs[tok[1]] = self.value()
            else:
                args.append(self.value())
            if self.peek() and self.peek()[1] == ",":  # type: ignore[index]
                self.pos += 1
        if closing is not None:
            self.take(closing)
        return args, kwargs

    def value(self):
        kind, text = self.take()
        if kind == "string":
            return _unquote(text)
        if kind == "number":
            return float(text) if "." in text else int(text)
        if text == "[":
            items, _ = self.arguments("]")
            return items
        if kind == "name":
            if (following := self.peek()) and following[1] == "(":
                self.pos += 1
                args, kwargs = self.arguments(")")
                return Call(text, args, kwargs)
            if text in ("true", "false"):
                return text == "true"
            return Ident(text)
        raise SchemaError(f"{self.where}: unexpected {text!r}")


def _unquote(text: str) -> str:
    body = text[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


def _balanced(text: str, start: int, where: str) -> int:
    """Index just past the parenthesis group opening at text[start] (strings respected)."""
    depth = 0
    for i, ch in _outside_strings(text, start):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    raise SchemaError(f"{where}: unbalanced parentheses")


def _attributes(text: str, where: str) -> list[Attribute]:
    attrs = []
    pos = 0
    while pos < len(text):
        if text[pos].isspace():
            pos += 1
            continue
        m = re.compile(r"@{1,2}([A-Za-z_][\w.]*)").match(text, pos)
        if not m:
            raise SchemaError(f"{where}: cannot read {text[pos:].strip()!r}")
        pos = m.end()
        args: list = []
        kwargs: dict = {}
        while pos < len(text) and text[pos].isspace() and text[pos:].lstrip().startswith("("):
            pos += 1
        if pos < len(text) and text[pos] == "(":
            end = _balanced(text, pos, where)
            args, kwargs = _ArgParser(text[pos + 1 : end - 1], where).arguments(None)
            pos = end
        attrs.append(Attribute(m.group(1), args, kwargs))
    return attrs


@dataclass
class _Field:
    name: str
    type: str
    optional: bool
    is_list: bool
    attrs: list[Attribute]
    line: int

    def attr(self, name: str) -> Attribute | None:
        return next((a for a in self.attrs if a.name == name), None)


@dataclass
class _Block:
    kind: str
    name: str
    line: int
    fields: list[_Field] = field(default_factory=list)
    attrs: list[Attribute] = field(default_factory=list)
    values: list[tuple[str, str]] = field(default_factory=list)  # enums: (name, database value)

    def attr(self, name: str) -> list[Attribute]:
        return [a for a in self.attrs if a.name == name]


_BLOCK_START = re.compile(r"^\s*(model|enum|view|type|datasource|generator)\s+(\w+)\s*\{\s*$")
_FIELD = re.compile(r"^\s*(\w+)\s+(Unsupported\(\s*\"(?:[^\"\\]|\\.)*\"\s*\)|\w+)(\[\])?(\?)?\s*(.*)$")


def _blocks(text: str) -> list[_Block]:
    lines = _strip_comments(text).splitlines()
    blocks: list[_Block] = []
    current: _Block | None = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        where = f"schema.prisma line {number}"
        if current is None:
            m = _BLOCK_START.match(line)
            if not m:
                raise SchemaError(f"{where}: expected a model, enum, datasource or generator block, found {line!r}")
            current = _Block(m.group(1), m.group(2), number)
            continue
        if line == "}":
            blocks.append(current)
            current = None
            continue
        if current.kind in ("datasource", "generator"):
            continue
        if line.startswith("@@"):
            current.attrs.extend(_attributes(line, where))
            continue
        if current.kind == "enum":
            m = re.match(r"^(\w+)\s*(.*)$", line)
            if not m:
                raise SchemaError(f"{where}: cannot read the enum value {line!r}")
            mapped = next((a.args[0] for a in _attributes(m.group(2), where) if a.name == "map"), m.group(1))
            current.values.append((m.group(1), mapped))
            continue
        m = _FIELD.match(line)
        if not m:
            raise SchemaError(f"{where}: cannot read the field {line!r}")
        current.fields.append(
            _Field(m.group(1), m.group(2), bool(m.group(4)), bool(m.group(3)), _attributes(m.group(5), where), number)
        )
    if current is not None:
        raise SchemaError(f"schema.prisma line {current.line}: the {current.kind} {current.name} is never closed")
    return blocks


# --------------------------------------------------------------------------- building


def prisma_name(table: str, columns: list[str] | tuple[str, ...], suffix: str) -> str:
    """The name Prisma gives a constraint or index: <table>_<columns>_<suffix>, cut to 63."""
    base = "_".join([table, *columns])
    return f"{base[: MAX_IDENTIFIER - len(suffix) - 1]}_{suffix}"


def parse_schema(text: str) -> Schema:
    blocks = _blocks(text)
    models = {b.name: b for b in blocks if b.kind == "model"}
    enums = {b.name: b for b in blocks if b.kind == "enum"}
    schema = Schema()
    for block in enums.values():
        db_name = next((a.args[0] for a in block.attr("map")), block.name)
        schema.enums[db_name] = [value for _, value in block.values]
    enum_db_names = {name: next((a.args[0] for a in b.attr("map")), name) for name, b in enums.items()}
    tables = {name: _table_name(block) for name, block in models.items()}

    for name, block in models.items():
        table = Table(tables[name], name)
        column_of = {}
        for fld in block.fields:
            if fld.type in models:
                continue  # a relation field; its foreign key comes from @relation below
            column = _column(fld, enum_db_names, f"schema.prisma line {fld.line}: model {name}, field {fld.name}")
            table.columns[column.name] = column
            column_of[fld.name] = column.name
        _keys_and_indexes(table, block, column_of)
        schema.tables[table.name] = table

    for name, block in models.items():
        table = schema.tables[tables[name]]
        for fld in block.fields:
            relation = fld.attr("relation")
            if fld.type not in models or relation is None or "fields" not in relation.kwargs:
                continue
            where = f"schema.prisma line {fld.line}: model {name}, field {fld.name}"
            target = models[fld.type]
            target_columns = {f.name: _column_name(f) for f in target.fields}
            local = tuple(_lookup(table_columns_of(block), _ident(f), where) for f in relation.kwargs["fields"])
            remote = tuple(_lookup(target_columns, _ident(f), where) for f in relation.kwargs.get("references", []))
            optional = any(table.columns[c].nullable for c in local)
            on_delete = _action(relation.kwargs.get("onDelete"), "SetNull" if optional else "Restrict", where)
            on_update = _action(relation.kwargs.get("onUpdate"), "Cascade", where)
            fk_name = relation.kwargs.get("map") or prisma_name(table.name, local, "fkey")
            table.foreign_keys.append(ForeignKey(fk_name, local, tables[fld.type], remote, on_delete, on_update))
    return schema


def table_columns_of(block: _Block) -> dict[str, str]:
    return {f.name: _column_name(f) for f in block.fields}


def _table_name(block: _Block) -> str:
    return next((a.args[0] for a in block.attr("map")), block.name)


def _column_name(fld: _Field) -> str:
    mapped = fld.attr("map")
    return mapped.args[0] if mapped and mapped.args else fld.name


def _ident(value) -> str:
    if isinstance(value, Ident):
        return value.name
    if isinstance(value, Call):
        return value.name
    return str(value)


def _lookup(columns: dict[str, str], name: str, where: str) -> str:
    if name not in columns:
        raise SchemaError(f"{where}: {name!r} is not a field of the model")
    return columns[name]


def _action(value, default: str, where: str) -> str:
    name = _ident(value) if value is not None else default
    if name not in REFERENTIAL_ACTIONS:
        raise SchemaError(f"{where}: unknown referential action {name!r}")
    return REFERENTIAL_ACTIONS[name]


def _column(fld: _Field, enums: dict[str, str], where: str) -> Column:
    native = next((a for a in fld.attrs if a.name.startswith("db.")), None)
    if fld.type.startswith("Unsupported"):
        pg_type = _unquote(fld.type[fld.type.index('"') : fld.type.rindex('"') + 1]).lower()
    elif native is not None:
        kind = native.name[3:]
        if kind not in NATIVE_TYPES:
            raise SchemaError(f"{where}: unknown native type @{native.name}")
        args = f"({','.join(str(a) for a in native.args)})" if native.args else ""
        pg_type = NATIVE_TYPES[kind].format(args=args)
    elif fld.type in SCALAR_TYPES:
        pg_type = SCALAR_TYPES[fld.type]
    elif fld.type in enums:
        pg_type = enums[fld.type]
    else:
        raise SchemaError(f"{where}: unknown type {fld.type!r}")
    if fld.is_list:
        pg_type += "[]"  # Prisma creates list columns without NOT NULL
    default_attr = fld.attr("default")
    default = _default(default_attr.args[0], fld, where) if default_attr and default_attr.args else None
    return Column(_column_name(fld), pg_type, fld.optional or fld.is_list, default, fld.name)


def _default(value, fld: _Field, where: str) -> tuple | None:
    """The default as a comparable tuple (the live one: parse_default_expression, read by litellm_prisma_drift)."""
    if isinstance(value, Call):
        if value.name == "now":
            return ("now",)
        if value.name == "autoincrement":
            return ("seq",)
        if value.name in CLIENT_DEFAULTS:
            return None
        if value.name == "dbgenerated":
            return parse_default_expression(value.args[0]) if value.args else None
        raise SchemaError(f"{where}: unknown default function {value.name}()")
    if isinstance(value, list):
        return ("array", tuple(_scalar_text(v) for v in value))
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("num", float(value))
    if isinstance(value, Ident):
        return ("value", value.name)  # an enum value
    if fld.type in ("Int", "BigInt", "Float", "Decimal"):
        return ("num", float(value))
    return ("value", str(value))


def _scalar_text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Ident):
        return value.name
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_CAST = re.compile(
    r"::\s*(?:\"[^\"]+\"|[a-z_][a-z0-9_ ]*(?:\(\d+(?:,\d+)?\))?(?: with(?:out)? time zone)?)(\[\])?\s*$", re.I
)
_NUMERIC_CASTS = ("integer", "bigint", "smallint", "numeric", "double precision", "real")


def parse_default_expression(text: str | None) -> tuple | None:
    """A column default as PostgreSQL prints it (pg_get_expr) -> a comparable tuple."""
    if text is None:
        return None
    expr = text.strip()
    lowered = expr.lower()
    if lowered in ("current_timestamp", "now()", "current_timestamp(3)", "transaction_timestamp()"):
        return ("now",)
    if lowered.startswith("nextval("):
        return ("seq",)
    if lowered in ("true", "false"):
        return ("bool", lowered == "true")
    if re.fullmatch(r"-?\d+(\.\d+)?", expr):
        return ("num", float(expr))
    if lowered.startswith("array["):
        body = _split_top(expr[6:])[0]
        items = [_strip_literal(item) for item in _split_top(body)] if body.strip() else []
        return ("array", tuple(items))
    cast = _CAST.search(expr)
    if cast and expr.startswith("'"):
        literal = _strip_literal(expr[: cast.start()])
        cast_type = cast.group(0)[2:].strip().lower()
        if cast.group(1) or cast_type.endswith("[]"):
            inner = literal.strip()
            if inner.startswith("{") and inner.endswith("}"):
                return ("array", tuple(x.strip().strip('"') for x in inner[1:-1].split(",") if x.strip()))
        if cast_type.startswith(_NUMERIC_CASTS):
            try:
                return ("num", float(literal))
            except ValueError:
                return ("value", literal)
        if cast_type == "boolean":
            return ("bool", literal.lower() in ("true", "t"))
        return ("value", literal)
    if expr.startswith("'") and expr.endswith("'"):
        return ("value", _strip_literal(expr))
    return ("expr", re.sub(r"\s+", " ", lowered))


def _strip_literal(text: str) -> str:
    text = text.strip()
    cast = _CAST.search(text)
    if cast and not text.endswith("'"):
        text = text[: cast.start()].strip()
    if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text


def _split_top(text: str) -> list[str]:
    """Split on top-level commas, up to the bracket that closes the enclosing list."""
    parts: list[str] = []
    depth, in_string, start = 0, False, 0
    for i, ch in enumerate(text):
        if ch == "'":
            in_string = not in_string
        elif not in_string and ch in "([":
            depth += 1
        elif not in_string and ch in ")]":
            depth -= 1
            if depth < 0:
                return [*parts, text[start:i]]
        elif not in_string and depth == 0 and ch == ",":
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _index_columns(values: list, column_of: dict[str, str], where: str) -> tuple[tuple[str, str], ...]:
    cols = []
    for value in values:
        sort = "ASC"
        if isinstance(value, Call):
            sort = "DESC" if _ident(value.kwargs.get("sort", "Asc")) == "Desc" else "ASC"
        cols.append((_lookup(column_of, _ident(value), where), sort))
    return tuple(cols)


def _keys_and_indexes(table: Table, block: _Block, column_of: dict[str, str]) -> None:
    where = f"model {block.name}"
    for fld in block.fields:
        if fld.name not in column_of:
            continue
        col = column_of[fld.name]
        ident = fld.attr("id")
        if ident is not None:
            table.primary_key = (col,)
            table.primary_key_name = ident.kwargs.get("map") or f"{table.name}_pkey"
        unique = fld.attr("unique")
        if unique is not None:
            name = unique.kwargs.get("map") or prisma_name(table.name, [col], "key")
            table.indexes.append(Index(name, ((col, "ASC"),), unique=True))
    for attr in block.attrs:
        if attr.name in ("map", "schema", "ignore"):
            continue
        fields = attr.args[0] if attr.args else attr.kwargs.get("fields", [])
        if attr.name == "id":
            cols = _index_columns(fields, column_of, where)
            table.primary_key = tuple(c for c, _ in cols)
            table.primary_key_name = attr.kwargs.get("map") or f"{table.name}_pkey"
        elif attr.name in ("unique", "index"):
            cols = _index_columns(fields, column_of, f"{where}, @@{attr.name}")
            is_unique = attr.name == "unique"
            name = attr.kwargs.get("map") or prisma_name(
                table.name, [c for c, _ in cols], "key" if is_unique else "idx"
            )
            method = INDEX_METHODS.get(_ident(attr.kwargs.get("type", "BTree")))
            if method is None:
                raise SchemaError(f"{where}: unknown index type {_ident(attr.kwargs['type'])!r}")
            table.indexes.append(Index(name, cols, unique=is_unique, method=method))
        elif attr.name == "fulltext":
            raise SchemaError(f"{where}: @@fulltext is not supported on PostgreSQL")
