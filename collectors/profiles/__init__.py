"""Device profiles: TOML register maps per meter model, loaded and validated.

The format is specs/device-profile.md. Choices this module makes where the spec is silent:

- ``[profile]`` needs ``name``, ``model``, ``kind`` and ``word_order``; ``mailbox`` is optional.
- ``[[block]]`` may carry ``every = N`` (default 1): the poller reads the block on one cycle
  in N only (staggered per meter), for registers that change only through the mailbox,
  such as the prepaid meters' configuration block.
- ``[[state_block]]`` (optional, table / start / count): the registers the fast state poll reads (balance,
  purchase count, relay and status bits, command sequence); each lies inside one ``[[block]]``, so a full
  reading holds the same values. A profile without one is not read by the fast state poll.
- ``[[point]]`` may carry ``table = "holding"|"input"``; it is needed only when a profile
  has blocks in both tables covering the same address.
- A point whose ``unit`` is a money unit (``yuan``, ``yuan/kWh``) or that says
  ``decimal = true`` decodes to ``decimal.Decimal`` (raw * scale, exact), never float.
- A ``bits`` point decodes to its raw register under its own key plus one bool per named
  bit; bit names share the key space with point keys and must be unique too.
- Unknown keys are refused, so a typo (``adress``) does not silently drop a register.
- ``ProfileRegistry``: a user profile with a built-in's name replaces the built-in (a site
  can correct a map in the field without a release); ``overridden`` lists those names.
"""

from __future__ import annotations

import math
import re
import struct
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

BUILTIN_DIR = Path(__file__).resolve().parent

TYPE_WIDTH = {"u16": 1, "s16": 1, "bits": 1, "u32": 2, "s32": 2, "f32": 2}
TABLES = ("holding", "input")
KINDS = ("prepaid-1p", "prepaid-3p", "meter-3p", "transformer-terminal")
WORD_ORDERS = ("big", "little")
MONEY_UNITS = frozenset({"yuan", "yuan/kWh"})
MAX_BLOCK_REGISTERS = 125

_PROFILE_KEYS = {"name", "model", "kind", "word_order", "mailbox", "description"}
_BLOCK_KEYS = {"table", "start", "count", "every"}
_POINT_KEYS = {"key", "address", "type", "scale", "unit", "bits", "table", "decimal"}
_REQUIRED_PROFILE = ("name", "model", "kind", "word_order")
_REQUIRED_BLOCK = ("table", "start", "count")
_REQUIRED_POINT = ("key", "address", "type")

# decode step codes
_U16, _S16, _U32, _S32, _F32, _BITS = range(6)
_CODES = {"u16": _U16, "s16": _S16, "u32": _U32, "s32": _S32, "f32": _F32, "bits": _BITS}
# scaling codes
_RAW, _INT_SCALE, _FLOAT_SCALE, _DECIMAL = range(4)
_FLOAT32 = struct.Struct(">f")


# What the loader says of a file it refuses, by code: the command line shows these; a page puts the code and its
# parameters into the reader's language (core/locales: profile_error.<code>).
MESSAGES = {
    "unreadable": "cannot read profile: {detail}",
    "not_utf8": "profile is not UTF-8 text",
    "invalid_toml": "invalid TOML: {detail}",
    "not_a_table": "{section} must be a table",
    "unknown_key": "unknown key {field!r} in {section}",
    "missing_key": "{section} is missing required key {field!r}",
    "unknown_top": "unknown table or key {field!r} (expected [profile], [[block]], [[state_block]], [[point]])",
    "no_profile": "missing [profile] table",
    "empty_string": "[profile] {field} must be a non-empty string",
    "unknown_kind": "unknown kind {value!r} (expected one of {expected})",
    "unknown_word_order": "unknown word_order {value!r} (expected big or little)",
    "bad_mailbox": "mailbox must be a register address 0..0xFFBB",
    "no_blocks": "a profile needs at least one [[block]]",
    "unknown_block_table": "unknown table {value!r} (expected holding or input)",
    "bad_block_start": "block start must be a register address 0..0xFFFF",
    "bad_block_count": "block count must be at least 1",
    "block_too_long": "block count {count} is over the Modbus limit of {limit} registers",
    "block_past_end": "block runs past register 0xFFFF",
    "bad_block_every": "block every must be a whole number of cycles >= 1",
    "blocks_overlap": "{table} block {block} overlaps the block {other} at line {other_line}",
    "state_blocks_not_array": "state_block must be an array of tables [[state_block]]",
    "bad_state_block": "[[state_block]] needs table = holding|input, a start register and a count >= 1",
    "state_block_outside": "state block {table} {block} must lie inside one [[block]]",
    "state_blocks_overlap": "state block {table} {block} overlaps another state block",
    "no_points": "a profile needs at least one [[point]]",
    "bad_point_key": "point key {field!r} must be an identifier (letters, digits, _)",
    "unknown_point_type": "unknown type {value!r} for point {field!r} (expected one of {expected})",
    "bad_point_address": "point {field!r} address must be a register address 0..0xFFFF",
    "bad_scale": "point {field!r} scale must be a non-zero number",
    "bad_unit": "point {field!r} unit must be a string",
    "bad_decimal": "point {field!r} decimal must be true or false",
    "bits_missing": "bits point {field!r} needs bits = {{ name = bit, ... }}",
    "bad_bit": "bits point {field!r}: {name!r} must map an identifier to a bit 0..15",
    "bit_twice": "bits point {field!r} names one bit twice",
    "bits_no_scale": "bits point {field!r} takes no scale or decimal",
    "bits_not_allowed": "point {field!r} of type {type} cannot have bits",
    "unknown_point_table": "unknown table {value!r} for point {field!r} (expected holding or input)",
    "duplicate_key": "duplicate key {field!r} (first at line {first_line})",
    "point_outside": "point {field!r} at {address} ({type}, {width} register{plural}) is outside every block",
    "point_outside_table": "point {field!r} at {address} ({type}, {width} register{plural}) is outside every "
                           "{table} block",
    "point_ambiguous": "point {field!r} at {address} lies in both a holding and an input block; "
                       "say table = \"holding\" or \"input\"",
}


class ProfileError(ValueError):
    """A profile file or directory that cannot be used; the message names the file and line. A fault of a file's
    content also carries its `code` (a key of MESSAGES) and `params`, for a page to put into words."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 code: str | None = None, params: dict | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.code = code
        self.params = params or {}
        if path is not None and line is not None:
            text = f"{path}:{line}: {message}"
        elif path is not None:
            text = f"{path}: {message}"
        else:
            text = message
        super().__init__(text)


@dataclass(frozen=True)
class Block:
    table: str
    start: int
    count: int
    every: int = 1

    @property
    def end(self) -> int:
        """First register after the block."""
        return self.start + self.count

    @property
    def function_code(self) -> int:
        return 3 if self.table == "holding" else 4


@dataclass(frozen=True)
class Point:
    key: str
    address: int
    type: str
    scale: float | int | None = None
    unit: str | None = None
    bits: dict[str, int] | None = None
    table: str = "holding"
    decimal: bool = False

    @property
    def width(self) -> int:
        return TYPE_WIDTH[self.type]


@dataclass
class Profile:
    name: str
    model: str
    kind: str
    word_order: str
    mailbox: int | None
    blocks: list[Block]
    points: list[Point]
    source: str
    state_blocks: list[Block] = field(default_factory=list)
    _plans: dict = field(init=False, repr=False, compare=False)
    _state_plans: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._plans = {(b.table, b.start): (b, _compile_block(b, self.points, self.word_order))
                       for b in self.blocks}
        self._state_plans = {(b.table, b.start): (b, _compile_block(b, self.points, self.word_order, whole=True))
                             for b in self.state_blocks}

    def keys(self) -> list[str]:
        """Every key decode() can produce, in profile order."""
        out: list[str] = []
        for p in self.points:
            out.append(p.key)
            if p.bits:
                out.extend(p.bits)
        return out

    def decode(self, blocks: dict[tuple[str, int], list[int]]) -> dict[str, Any]:
        """Decode raw registers keyed by (table, start) of this profile's blocks.

        Blocks not given are skipped (their keys are absent); f32 NaN/inf become None.
        """
        return self._decode(self._plans, blocks)

    def decode_state(self, blocks: dict[tuple[str, int], list[int]]) -> dict[str, Any]:
        """Decode raw registers of this profile's state blocks (the fast state poll's reads)."""
        return self._decode(self._state_plans, blocks)

    def state_keys(self) -> list[str]:
        """The keys decode_state() produces."""
        return [k for _b, plan in self._state_plans.values() for step in plan for k in (step[1], *dict(step[7]))]

    def _decode(self, plans: dict, blocks: dict[tuple[str, int], list[int]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for block_key, regs in blocks.items():
            entry = plans.get(block_key)
            if entry is None:
                raise ValueError(f"profile {self.name} has no {block_key[0]} block at 0x{block_key[1]:04X}")
            block, plan = entry
            if len(regs) != block.count:
                raise ValueError(
                    f"profile {self.name}: {block.table} block 0x{block.start:04X} needs "
                    f"{block.count} registers, got {len(regs)}")
            _run_plan(plan, regs, out)
        return out


# ---------------------------------------------------------------- decoding

def _decimals_of(scale: float | int) -> int:
    exp = Decimal(repr(scale)).normalize().as_tuple().exponent
    return max(0, -int(exp))


def _compile_block(block: Block, points: list[Point], word_order: str, whole: bool = False) -> list[tuple]:
    """Decode steps of the points in the block (with `whole`, only those lying wholly inside it)."""
    plan = []
    for p in points:
        if p.table != block.table or not (block.start <= p.address < block.end):
            continue
        if whole and p.address + p.width > block.end:
            continue
        off = p.address - block.start
        code = _CODES[p.type]
        hi, lo = (off, off + 1) if word_order == "big" else (off + 1, off)
        scale = p.scale
        if p.decimal:
            mode, arg = _DECIMAL, (Decimal(repr(scale)) if scale is not None else None)
        elif scale is None or (scale == 1 and code != _F32):
            mode, arg = _RAW, None
        elif isinstance(scale, int) and code != _F32:
            mode, arg = _INT_SCALE, scale
        else:
            mode, arg = _FLOAT_SCALE, (scale, _decimals_of(scale))
        bits = tuple(p.bits.items()) if p.bits else ()
        plan.append((code, p.key, off, hi, lo, mode, arg, bits))
    return plan


def _f32_digits(bits: int) -> tuple[float, int]:
    """The float32 with these bits as the shortest decimal that maps back to it (6..9 digits)."""
    raw = bits.to_bytes(4, "big")
    (f,) = _FLOAT32.unpack(raw)
    for digits in (6, 7, 8):
        text = f"{f:.{digits}g}"
        if _FLOAT32.pack(float(text)) == raw:
            return float(text), digits
    return float(f"{f:.9g}"), 9


def _run_plan(plan: list[tuple], regs: list[int], out: dict[str, Any]) -> None:
    for code, key, off, hi, lo, mode, arg, bits in plan:
        if code == _U16:
            v = regs[off]
        elif code == _S16:
            v = regs[off]
            if v & 0x8000:
                v -= 0x10000
        elif code == _U32:
            v = (regs[hi] << 16) | regs[lo]
        elif code == _S32:
            v = (regs[hi] << 16) | regs[lo]
            if v & 0x80000000:
                v -= 0x100000000
        elif code == _F32:
            bits32 = (regs[hi] << 16) | regs[lo]
            if bits32 & 0x7F800000 == 0x7F800000:  # NaN or infinity
                out[key] = None
                continue
            f, digits = _f32_digits(bits32)
            if mode == _FLOAT_SCALE:
                out[key] = float(f"{f * arg[0]:.{digits}g}")
            elif mode == _DECIMAL:
                d = Decimal(repr(f))
                out[key] = d * arg if arg is not None else d
            else:
                out[key] = f
            continue
        else:  # bits
            v = regs[off]
            out[key] = v
            for name, bit in bits:
                out[name] = bool((v >> bit) & 1)
            continue
        if mode == _RAW:
            out[key] = v
        elif mode == _FLOAT_SCALE:
            out[key] = round(v * arg[0], arg[1])
        elif mode == _INT_SCALE:
            out[key] = v * arg
        else:
            out[key] = Decimal(v) * arg if arg is not None else Decimal(v)


# ---------------------------------------------------------------- loading

class _Lines:
    """Finds the source line of a table or key; tomllib reports none for valid TOML."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\"'-]+)\s*\]\]?")

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.headers: list[tuple[int, str, bool]] = []  # (line, name, is_array)
        for i, raw in enumerate(self.lines, start=1):
            m = self._HEADER.match(raw)
            if m:
                self.headers.append((i, m.group(2).strip("\"'"), m.group(1) == "[["))

    def table(self, name: str, index: int | None = None) -> int:
        """Line of [name] (index None) or of the index-th [[name]]."""
        n = 0
        for line, hname, is_array in self.headers:
            if hname != name:
                continue
            if index is None:
                return line
            if is_array:
                if n == index:
                    return line
                n += 1
        return self.key_at_top(name)

    def key(self, table: str, index: int | None, key: str) -> int:
        """Line of `key = ...` inside the given table, else the table's header line."""
        start = self.table(table, index)
        pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(start, len(self.lines)):  # lines after the header (0-based i = line i+1)
            line_no = i + 1
            if any(h[0] == line_no for h in self.headers):
                break
            if pat.match(self.lines[i]):
                return line_no
        return start

    def key_at_top(self, key: str) -> int:
        pat = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i, raw in enumerate(self.lines, start=1):
            if pat.match(raw):
                return i
        return 1


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (_is_int(v) or isinstance(v, float)) and not isinstance(v, bool)


def load_profile_file(path: str | Path) -> Profile:
    """Load and validate one profile file; ProfileError names the file and line of any fault."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fault("unreadable", path, None, detail=exc.strerror or str(exc)) from None
    except UnicodeDecodeError:
        raise _fault("not_utf8", path, None) from None
    return _parse_profile(text, path)


def _parse_profile(text: str, path: Path) -> Profile:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise _fault("invalid_toml", path, int(m.group(1)) if m else 1, detail=str(exc)) from None
    lines = _Lines(text)

    def check_table(kind: str, i: int, item, allowed: set[str], required: tuple[str, ...]) -> int:
        """A [[block]] / [[point]] entry is a table of known keys holding every required one; its line."""
        hl = lines.table(kind, i)
        if not isinstance(item, dict):
            raise fail("not_a_table", hl, section=f"[[{kind}]]")
        for k in item:
            if k not in allowed:
                raise fail("unknown_key", lines.key(kind, i, k), field=k, section=f"[[{kind}]]")
        for k in required:
            if k not in item:
                raise fail("missing_key", hl, field=k, section=f"[[{kind}]]")
        return hl

    def fail(code: str, line: int, **params) -> ProfileError:
        return _fault(code, path, line, **params)

    for top in doc:
        if top not in ("profile", "block", "point", "state_block"):
            raise fail("unknown_top", lines.table(top), field=top)

    prof = doc.get("profile")
    if not isinstance(prof, dict):
        raise fail("no_profile", 1)
    ptab_line = lines.table("profile")
    for k in prof:
        if k not in _PROFILE_KEYS:
            raise fail("unknown_key", lines.key("profile", None, k), field=k, section="[profile]")
    for k in _REQUIRED_PROFILE:
        if k not in prof:
            raise fail("missing_key", ptab_line, field=k, section="[profile]")
    for k in ("name", "model", "kind", "word_order"):
        if not isinstance(prof[k], str) or not prof[k].strip():
            raise fail("empty_string", lines.key("profile", None, k), field=k)
    if prof["kind"] not in KINDS:
        raise fail("unknown_kind", lines.key("profile", None, "kind"), value=prof["kind"], expected=", ".join(KINDS))
    if prof["word_order"] not in WORD_ORDERS:
        raise fail("unknown_word_order", lines.key("profile", None, "word_order"), value=prof["word_order"])
    mailbox = prof.get("mailbox")
    if mailbox is not None and (not _is_int(mailbox) or not 0 <= mailbox <= 0xFFFF - 0x44):
        raise fail("bad_mailbox", lines.key("profile", None, "mailbox"))

    raw_blocks = doc.get("block")
    if not isinstance(raw_blocks, list) or not raw_blocks:
        raise fail("no_blocks", ptab_line)
    blocks: list[Block] = []
    block_lines: list[int] = []
    for i, b in enumerate(raw_blocks):
        hl = check_table("block", i, b, _BLOCK_KEYS, _REQUIRED_BLOCK)
        if b["table"] not in TABLES:
            raise fail("unknown_block_table", lines.key("block", i, "table"), value=b["table"])
        if not _is_int(b["start"]) or not 0 <= b["start"] <= 0xFFFF:
            raise fail("bad_block_start", lines.key("block", i, "start"))
        count = b["count"]
        if not _is_int(count) or count < 1:
            raise fail("bad_block_count", lines.key("block", i, "count"))
        if count > MAX_BLOCK_REGISTERS:
            raise fail("block_too_long", lines.key("block", i, "count"), count=count, limit=MAX_BLOCK_REGISTERS)
        if b["start"] + count > 0x10000:
            raise fail("block_past_end", lines.key("block", i, "count"))
        every = b.get("every", 1)
        if not _is_int(every) or every < 1:
            raise fail("bad_block_every", lines.key("block", i, "every"))
        blk = Block(b["table"], b["start"], count, every)
        for j, other in enumerate(blocks):
            if other.table == blk.table and blk.start < other.end and other.start < blk.end:
                raise fail("blocks_overlap", hl, table=blk.table, block=f"0x{blk.start:04X}+{blk.count}",
                           other=f"0x{other.start:04X}+{other.count}", other_line=block_lines[j])
        blocks.append(blk)
        block_lines.append(hl)

    raw_states = doc.get("state_block", [])
    if not isinstance(raw_states, list):
        raise fail("state_blocks_not_array", lines.table("state_block"))
    state_blocks: list[Block] = []
    for i, b in enumerate(raw_states):
        hl = check_table("state_block", i, b, _BLOCK_KEYS - {"every"}, _REQUIRED_BLOCK)
        table, start, count = b["table"], b["start"], b["count"]
        if table not in TABLES or not _is_int(start) or not _is_int(count) or count < 1:
            raise fail("bad_state_block", hl)
        blk = Block(table, start, count)
        if not any(o.table == table and o.start <= start and blk.end <= o.end for o in blocks):
            raise fail("state_block_outside", hl, table=table, block=f"0x{start:04X}+{count}")
        if any(o.table == table and blk.start < o.end and o.start < blk.end for o in state_blocks):
            raise fail("state_blocks_overlap", hl, table=table, block=f"0x{start:04X}+{count}")
        state_blocks.append(blk)

    raw_points = doc.get("point")
    if not isinstance(raw_points, list) or not raw_points:
        raise fail("no_points", ptab_line)
    tables_used = {b.table for b in blocks}
    points: list[Point] = []
    seen_keys: dict[str, int] = {}
    for i, p in enumerate(raw_points):
        hl = check_table("point", i, p, _POINT_KEYS, _REQUIRED_POINT)
        key = p["key"]
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise fail("bad_point_key", lines.key("point", i, "key"), field=key)
        ptype = p["type"]
        if ptype not in TYPE_WIDTH:
            raise fail("unknown_point_type", lines.key("point", i, "type"), value=ptype, field=key,
                       expected=", ".join(TYPE_WIDTH))
        address = p["address"]
        if not _is_int(address) or not 0 <= address <= 0xFFFF:
            raise fail("bad_point_address", lines.key("point", i, "address"), field=key)
        scale = p.get("scale")
        if scale is not None and (not _is_number(scale) or scale == 0 or not math.isfinite(scale)):
            raise fail("bad_scale", lines.key("point", i, "scale"), field=key)
        unit = p.get("unit")
        if unit is not None and not isinstance(unit, str):
            raise fail("bad_unit", lines.key("point", i, "unit"), field=key)
        dec = p.get("decimal", False)
        if not isinstance(dec, bool):
            raise fail("bad_decimal", lines.key("point", i, "decimal"), field=key)
        bits = p.get("bits")
        if ptype == "bits":
            if not isinstance(bits, dict) or not bits:
                raise fail("bits_missing", hl, field=key)
            for name, bit in bits.items():
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) or not _is_int(bit) or not 0 <= bit <= 15:
                    raise fail("bad_bit", lines.key("point", i, "bits"), field=key, name=name)
            if len(set(bits.values())) != len(bits):
                raise fail("bit_twice", lines.key("point", i, "bits"), field=key)
            if scale is not None or dec:
                raise fail("bits_no_scale", hl, field=key)
        elif bits is not None:
            raise fail("bits_not_allowed", lines.key("point", i, "bits"), field=key, type=ptype)
        table = p.get("table")
        if table is not None and table not in TABLES:
            raise fail("unknown_point_table", lines.key("point", i, "table"), value=table, field=key)
        for name in [key, *(bits or {})]:
            if name in seen_keys:
                raise fail("duplicate_key", hl, field=name, first_line=seen_keys[name])
            seen_keys[name] = hl
        width = TYPE_WIDTH[ptype]
        candidates = [t for t in ([table] if table else TABLES) if t in tables_used]
        inside = [t for t in candidates
                  if any(b.table == t and b.start <= address and address + width <= b.end for b in blocks)]
        if not inside:
            raise fail("point_outside_table" if table else "point_outside", lines.key("point", i, "address"),
                       field=key, address=f"0x{address:04X}", type=ptype, width=width,
                       plural="s" if width > 1 else "", **({"table": table} if table else {}))
        if len(inside) > 1:
            raise fail("point_ambiguous", hl, field=key, address=f"0x{address:04X}")
        is_money = dec or (unit in MONEY_UNITS)
        points.append(Point(key, address, ptype, scale, unit, dict(bits) if bits else None, inside[0], is_money))

    return Profile(name=prof["name"], model=prof["model"], kind=prof["kind"], word_order=prof["word_order"],
                   mailbox=mailbox, blocks=blocks, points=points, source=str(path), state_blocks=state_blocks)


def _fault(code: str, path: Path, line: int | None, **params) -> ProfileError:
    return ProfileError(MESSAGES[code].format(**params), path, line, code=code, params=params)


def load_profile_dir(path: str | Path) -> dict[str, Profile]:
    """Load every *.toml in a directory; two files with one profile name are refused."""
    path = Path(path)
    if not path.is_dir():
        raise ProfileError("profile directory does not exist", path)
    out: dict[str, Profile] = {}
    for file in sorted(path.glob("*.toml")):
        prof = load_profile_file(file)
        if prof.name in out:
            line = _Lines(file.read_text(encoding="utf-8")).key("profile", None, "name")
            raise ProfileError(f"profile name {prof.name!r} is already defined in {out[prof.name].source}",
                               file, line)
        out[prof.name] = prof
    return out


class ProfileRegistry:
    """Built-in profiles plus an optional user directory; a user profile replaces a built-in of the same name."""

    def __init__(self, user_dir: str | Path | None = None):
        self._profiles = load_profile_dir(BUILTIN_DIR)
        self.overridden: set[str] = set()
        if user_dir is not None:
            for name, prof in load_profile_dir(user_dir).items():
                if name in self._profiles:
                    self.overridden.add(name)
                self._profiles[name] = prof

    def get(self, name: str) -> Profile:
        try:
            return self._profiles[name]
        except KeyError:
            raise ProfileError(f"unknown device profile {name!r}; known: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._profiles)

    def __contains__(self, name: object) -> bool:
        return name in self._profiles

    def __iter__(self):
        return iter(self.names())
