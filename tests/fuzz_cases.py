"""Bad inputs for the fuzz tests: hypothesis strategies that break one field of a good spec, space or
search config, a corpus of raw bad files, and the contract every case must end in."""

from __future__ import annotations

import copy
import math
import re

from hypothesis import strategies as st

MAX_LINE = 1200  # an error line, prefix included, stays below this


# -- values a user (or a broken generator) may put anywhere ---------------------------------------

BAD_SCALARS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e300, -1e300, 10**30, -(10**30), 2**63, 0, -1, -0.0,
                     True, False, None, "", " ", "nan", "1x1", "3x3x3x3", "0x3x3", "a" * 500, "\x00", "é",
                     [], {}, [[]], [None], {"a": 1}, [1, 2], [1, 2, 3, 4], [math.nan] * 3]),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.integers(min_value=-5, max_value=10**6), max_size=5),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=1, max_size=4),
)


def _paths(value, prefix=()):
    """Every path (tuple of keys / indices) into a nested dict/list value, containers included."""
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


def _set(data, path, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _delete(data, path):
    node = data
    for key in path[:-1]:
        node = node[key]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    else:
        del node[path[-1]]


@st.composite
def broken(draw, good: dict, misspell: tuple[str, ...] = ("kernal", "filter", "stage", "expand_ratio", "studdy")):
    """`good` with one to three mutations: a field set to a bad value, removed, or a misspelled
    field added (at the top or inside a nested mapping)."""
    data = copy.deepcopy(good)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        kind = draw(st.sampled_from(["set", "set", "set", "delete", "misspell"]))
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        if kind == "set":
            _set(data, path, draw(BAD_SCALARS))
        elif kind == "delete":
            _delete(data, path)
        else:
            parents = [p for p in _paths(data) if isinstance(_get(data, p), dict)]
            parent = draw(st.sampled_from(parents))
            _get(data, parent)[draw(st.sampled_from(misspell))] = draw(BAD_SCALARS)
    return data


def _get(data, path):
    for key in path:
        data = data[key]
    return data


# -- raw files -----------------------------------------------------------------------------------

ALIAS_BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
              "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
              "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]\n")

RAW_FILES = {
    "binary.yaml": bytes(range(256)) * 8,
    "latin1.yaml": "name: caf\xe9\nstem: {filters: 8}\n".encode("latin-1"),
    "utf16.yaml": "name: x\nstem: {filters: 8}\n".encode("utf-16"),
    "nul.yaml": b"name: x\x00\n",
    "deep_lists.yaml": b"[" * 20000 + b"]" * 20000,
    "deep_maps.yaml": b"{a: " * 5000 + b"1" + b"}" * 5000,
    "deep_block.yaml": "".join(f"{'  ' * i}k{i}:\n" for i in range(200)).encode(),
    "bomb_name.yaml": (ALIAS_BOMB + "name: *g\nstudy: *g\n").encode(),
    "bomb_value.yaml": (ALIAS_BOMB + "stages: *g\n").encode(),
    "empty.yaml": b"",
    "only_comment.yaml": b"# nothing\n",
    "scalar.yaml": b"42\n",
    "list.yaml": b"- 1\n- 2\n",
    "bad_yaml.yaml": b"a: [1, 2\nb: }\n",
    "tabs.yaml": b"a:\n\t- 1\n",
    "huge.yaml": b"a: " + b"x" * 1_200_000 + b"\n",
    "no_suffix": b"\x89PNG\r\n\x1a\n" + bytes(range(200)),
}

# the first line of a contract-keeping CLI error: `movinas CMD: error: ...`
CLI_ERROR = re.compile(r"^movinas [a-z]+: error: \S")


def check_message(exc: BaseException) -> None:
    """A user error: a ValueError (SpecError / UsageError) whose message is one bounded line."""
    text = str(exc)
    assert isinstance(exc, ValueError), f"{type(exc).__name__}: {text[:200]}"
    assert text and "\n" not in text, text[:300]
    assert len(text) < MAX_LINE, f"{len(text)} characters: {text[:200]}..."
    assert "Traceback" not in text


def check_cli(code: int, err: str) -> None:
    """The CLI contract for bad input: exit 2 and exactly one bounded line on stderr."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, f"exit {code}: {err[-500:]}"
    assert len(lines) == 1, err[-1000:]
    assert CLI_ERROR.match(lines[0]), lines[0][:300]
    assert len(lines[0]) < MAX_LINE, lines[0][:300]
