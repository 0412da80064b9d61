"""Checkpoint layout: ``MAGIC`` + zlib( u32 header length + orjson header + raw array bytes ).

The header holds the config, label vocabularies, the small aggregates (gauges, counters,
histograms, flow windows) and the name/typecode/length of each raw column that follows. The
per-slot columns, the key index table, recently seen event ids and the FIFOs of keys are stored
verbatim as machine arrays, so a 1M-ticket state dumps and loads without a per-ticket Python
loop. The heaps are not stored: :func:`.transitions.rebuild_heaps` rebuilds them from the columns.

Versions: ``MAGIC`` changes only for a layout an older loader would misread. Additions are
recognised by what the header lists, and a loader skips blobs it does not know, so checkpoints
stay readable in both directions (a rolled-back instance does not replay its partitions from 0):
a checkpoint without ``a_res_warn`` (written before the router sent its warning instants) loads
with every instant UNSET, i.e. the at-risk estimate those tickets were counted with; one without
``a_verdict`` (written before the router sent its verdicts) has every ticket's breaches counted on
the clock until a state with verdicts comes (an older release skips the column: the same); one without
``unaged`` has its tickets created ahead of the clock found and marked on load.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from collections import deque
from typing import TYPE_CHECKING, Any

import orjson

from .aggregates import FlowWindow, Histogram
from .columns import F_ENTERED, F_FR_PENDING, F_RECEIVED, F_RES_PENDING, UNSET
from .config import BacklogConfig
from .keyindex import SlotIndex
from .labels import LabelInterner
from .transitions import rebuild_heaps

if TYPE_CHECKING:
    from .state import BacklogState

MAGIC = b"BKLG\x01"
_COLUMNS = (
    "a_team",
    "a_cat",
    "a_src",
    "a_flags",
    "a_prio",
    "a_status",
    "a_bucket",
    "a_created",
    "a_fr_due",
    "a_res_due",
    "a_next",
    "a_rev",
    "free",
)
# Absent from older checkpoints (see above): each loads filled with its value for "not known".
_ADDED_COLUMNS = {"a_res_warn": ("q", UNSET), "a_verdict": ("B", 0)}
_LISTS = (
    "g_open",
    "g_overdue",
    "g_risk",
    "g_status",
    "g_age",
    "c_received",
    "c_routed",
    "c_resolved",
    "c_reopened",
    "c_escalated",
    "c_breach",
    "s_created",
    "n_unaged",
    "u_created",
)


def capture(state: BacklogState) -> bytes:
    """The uncompressed checkpoint body: copies of the state's columns and aggregates, so the
    caller can release the state's lock before :func:`seal` compresses it (at 1M open tickets the
    copy is a few tens of MB of memcpy, the compression several times longer)."""
    hashes, slots = state.index.dump()
    blobs: list[tuple[str, array[int]]] = [
        (name, getattr(state, name)) for name in (*_COLUMNS, *_ADDED_COLUMNS)
    ]
    blobs += [
        ("index_hashes", hashes),
        ("index_slots", slots),
        ("seen", array("Q", state.seen_order)),
        ("resolved_fifo", array("Q", state.resolved_fifo)),
        ("received_fifo", array("Q", state.received_fifo)),
        ("unaged", array("I", sorted(state.unaged))),
    ]
    header: dict[str, Any] = {
        "byteorder": sys.byteorder,
        "config": state.config.to_json(),
        "now_ms": state.now_ms,
        "pending_at": state.pending_at,
        "entered": [state.entered_at, state.entered_minute],
        "n_open": state.n_open,
        "received_per_key": True,
        "n_stateless": state.n_stateless,
        "labels": [state.teams.values, state.sources.values, state.categories.values],
        "lists": {name: getattr(state, name) for name in _LISTS},
        "h_ttr": state.h_ttr.to_json(),
        "h_fr": {str(k): v.to_json() for k, v in state.h_fr.items()},
        "h_res": {str(k): v.to_json() for k, v in state.h_res.items()},
        "inflow": state.inflow.to_json(),
        "outflow": state.outflow.to_json(),
        # Older releases read their Erlang C handle-time samples (resolution times) here: none, so
        # they fall back to their default handle time rather than to a queue time taken as work.
        "recent_handle": {},
        "recent_target": {str(k): list(v) for k, v in state.recent_target.items()},
        "blobs": [[name, arr.typecode, len(arr) * arr.itemsize] for name, arr in blobs],
    }
    head = orjson.dumps(header)
    return b"".join([len(head).to_bytes(4, "little"), head, *(arr.tobytes() for _, arr in blobs)])


def seal(body: bytes) -> bytes:
    """A checkpoint from a :func:`capture` body; needs no lock (zlib also releases the GIL)."""
    return MAGIC + zlib.compress(body, 3)


def load(data: bytes) -> BacklogState:
    from .state import BacklogState

    if not data.startswith(MAGIC):
        raise ValueError("not a backlog checkpoint (or an unknown version)")
    body = zlib.decompress(data[len(MAGIC) :])
    head_len = int.from_bytes(body[:4], "little")
    header = orjson.loads(body[4 : 4 + head_len])
    offset = 4 + head_len
    arrays: dict[str, array[int]] = {}
    for name, typecode, length in header["blobs"]:
        arr = array(typecode)
        arr.frombytes(body[offset : offset + length])
        if header["byteorder"] != sys.byteorder:
            arr.byteswap()
        arrays[name] = arr
        offset += length

    config = BacklogConfig.from_json(header["config"])
    state = BacklogState(config)
    for name in _COLUMNS:
        setattr(state, name, arrays[name])
    for name, (typecode, unknown) in _ADDED_COLUMNS.items():
        setattr(
            state, name, arrays[name] if name in arrays else array(typecode, [unknown]) * len(state.a_flags)
        )
    for name, values in header["lists"].items():
        setattr(state, name, list(values))
    state.index = SlotIndex.load(arrays["index_hashes"], arrays["index_slots"])
    state.seen_order = deque(arrays["seen"])
    state.seen = set(state.seen_order)
    state.resolved_fifo = deque(arrays["resolved_fifo"])
    state.received_fifo = deque(arrays.get("received_fifo", ()))
    state.n_stateless = header.get("n_stateless", 0)
    teams, sources, categories = header["labels"]  # reserved values: those of the fresh state's
    state.teams = LabelInterner.restore(config.max_teams, teams, state.teams.values)
    state.sources = LabelInterner.restore(config.max_sources, sources, state.sources.values)
    state.categories = LabelInterner.restore(config.max_categories, categories, state.categories.values)
    state.now_ms, state.n_open = header["now_ms"], header["n_open"]
    state.h_ttr = Histogram.from_json(header["h_ttr"])
    state.h_fr = {int(k): Histogram.from_json(v) for k, v in header["h_fr"].items()}
    state.h_res = {int(k): Histogram.from_json(v) for k, v in header["h_res"].items()}
    state.inflow = FlowWindow.from_json(config.flow_window_minutes, header["inflow"])
    state.outflow = FlowWindow.from_json(config.flow_window_minutes, header["outflow"])
    n = config.recent_samples
    # header["recent_handle"] (resolution times, the old handle time) is not read: see capture.
    state.recent_target = {int(k): deque(v, maxlen=n) for k, v in header["recent_target"].items()}
    if "s_created" not in header["lists"]:  # checkpoint written before the age sums existed
        for slot in state.open_slots():
            state.s_created[state.a_team[slot]] += state.a_created[slot]
    if "unaged" in arrays:
        state.unaged = set(arrays["unaged"])
    else:  # written before tickets ahead of the clock were aged 0: mark them, due at creation
        _mark_unaged(state)
    if not header.get("received_per_key"):  # written while every ticket.created was counted
        for _, slot in state.index.items():
            state.a_flags[slot] |= F_RECEIVED
    # Breaches left pending when the checkpoint was taken count once the clock moves past the
    # instant they were left pending at: a state applied at that same instant may still settle
    # them, as it would have without the checkpoint (older checkpoints did not keep the instant).
    pending_bits = F_FR_PENDING | F_RES_PENDING
    state.pending_slots = array("I", (slot for slot, f in enumerate(state.a_flags) if f & pending_bits))
    state.pending_at = header.get("pending_at", state.now_ms - 1)
    # The same for an import's open state before its resolved one: no flow. A checkpoint without
    # the instant (an older release's, which may have kept marks it did not know) counts both.
    if "entered" in header:
        state.entered_at, state.entered_minute = header["entered"]
        state.entered_slots = array("I", (slot for slot, f in enumerate(state.a_flags) if f & F_ENTERED))
    else:
        for slot, f in enumerate(state.a_flags):
            if f & F_ENTERED:
                state.a_flags[slot] = f & ~F_ENTERED
    rebuild_heaps(state)
    return state


def _mark_unaged(state: BacklogState) -> None:
    """Mark the open tickets created ahead of the clock as :func:`.transitions.add_open` does (their
    lists absent, all zero) and schedule each at its creation instant (rebuild_heaps follows)."""
    now, created, team, a_next = state.now_ms, state.a_created, state.a_team, state.a_next
    for slot in state.open_slots():
        if created[slot] > now:
            state.unaged.add(slot)
            state.n_unaged[team[slot]] += 1
            state.u_created[team[slot]] += created[slot]
            a_next[slot] = min(a_next[slot], created[slot])
