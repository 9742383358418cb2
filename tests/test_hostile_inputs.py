"""Property-based tests (hypothesis) of everything that reads untrusted bytes: the configuration
loader, the checkpoint loader, the IDX reader, the host's frame receiver and the host driver
behind a hostile transport. Whatever the bytes, the outcome is a value or an EqpropError; the
receiver's work per byte is bounded."""

import io
import json
import zipfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eqprop import presets
from eqprop.boards.host import BoardLink, LinkError
from eqprop.boards import protocol
from eqprop.boards.protocol import ANSWER, MAX_PAYLOAD, Frame, Receiver, crc16
from eqprop.boards.requests import info_bytes
from eqprop.checkpoint import checkpoint_bytes, load_checkpoint
from eqprop.config import Config
from eqprop.data import read_idx
from eqprop.errors import EqpropError
from eqprop.network import init_params
from eqprop.report import json_text

FAST = settings(max_examples=int(__import__("os").environ.get("EQPROP_HYPOTHESIS_EXAMPLES", 60)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SMALL = presets.get("digits-cep").replace(network={"sizes": [6, 4, 3]}, learning={"lr": [0.1, 0.1]})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


def _field_edits():
    """A configuration's JSON with one field set to an arbitrary JSON value."""
    fields = [(section, name) for section, values in SMALL.to_dict().items() if isinstance(values, dict) for name in values]
    return st.tuples(st.sampled_from(fields), json_values)


@FAST
@given(edit=_field_edits())
def test_config_loader_takes_any_field_value_or_names_the_field(edit):
    (section, name), value = edit
    data = SMALL.to_dict()
    data[section][name] = value
    try:
        cfg = Config.from_json(json.dumps(data))
    except EqpropError as exc:
        assert str(exc)
    else:
        assert Config.from_json(cfg.to_json()) == cfg


@FAST
@given(raw=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_config_loader_takes_any_bytes(tmp_path, raw):
    path = tmp_path / "c.json"
    path.write_bytes(raw)
    try:
        Config.load(path)
    except EqpropError:
        pass


def _good_checkpoint() -> bytes:
    return checkpoint_bytes(SMALL, init_params(SMALL.network, torch.Generator().manual_seed(0)))


GOOD = _good_checkpoint()


@FAST
@given(flips=st.lists(st.tuples(st.integers(0, len(GOOD) - 1), st.integers(1, 255)), min_size=1, max_size=8),
       cut=st.none() | st.integers(0, len(GOOD)))
def test_checkpoint_loader_takes_any_damage(tmp_path, flips, cut):
    data = bytearray(GOOD)
    for offset, mask in flips:
        data[offset] ^= mask
    path = tmp_path / "ck.npz"
    path.write_bytes(bytes(data[:cut]))
    try:
        cfg, arrays = load_checkpoint(path)
    except EqpropError:
        return
    assert cfg.network.sizes == SMALL.network.sizes and set(arrays) == {"W0", "b1", "W1", "b2"}


@FAST
@given(entries=st.dictionaries(st.sampled_from(["format", "format_version", "arith", "config", "W0", "b1", "W1", "b2", "x"]),
                               st.one_of(st.integers(-3, 3).map(np.array), st.floats(allow_nan=True).map(np.array),
                                         st.text(max_size=20).map(np.array),
                                         st.lists(st.integers(0, 4), max_size=3).map(lambda s: np.zeros(s, np.float32)))))
def test_checkpoint_loader_takes_any_entries(tmp_path, entries):
    with np.load(io.BytesIO(GOOD)) as ck:
        base = {k: ck[k] for k in ck.files}
    path = tmp_path / "ck.npz"
    np.savez(path, **(base | entries))
    try:
        load_checkpoint(path)
    except EqpropError:
        pass


@FAST
@given(header=st.tuples(st.integers(0, 1), st.integers(0, 1), st.sampled_from([8, 9, 11, 12, 13, 14, 7, 255]), st.integers(0, 6)),
       dims=st.lists(st.integers(0, 2**32 - 1) | st.integers(0, 5), max_size=6), body=st.binary(max_size=64), gzipped=st.booleans())
def test_idx_reader_takes_any_header_and_body(tmp_path, header, dims, body, gzipped):
    import gzip
    import struct

    raw = bytes(header) + struct.pack(f">{len(dims)}I", *dims) + body
    path = tmp_path / "x.idx"
    path.write_bytes(gzip.compress(raw) if gzipped else raw)
    try:
        array = read_idx(path)
    except EqpropError:
        return
    assert array.shape == tuple(dims[:header[3]])


def test_idx_header_with_no_elements_but_overflowing_dimensions_is_a_data_error(tmp_path):
    path = tmp_path / "x.idx"
    path.write_bytes(bytes([0, 0, 8, 3]) + bytes(4) + b"\xff" * 8)  # 0 x (2^32 - 1) x (2^32 - 1) bytes
    with pytest.raises(EqpropError, match="no array can have"):
        read_idx(path)


def _frames():
    return st.builds(Frame, st.integers(0, 255), st.integers(0, 255), st.binary(max_size=40))


@FAST
@given(frames=st.lists(_frames(), max_size=6), garbage=st.lists(st.binary(max_size=12), max_size=7), chunk=st.integers(1, 50))
def test_receiver_returns_every_frame_between_garbage_without_sof(frames, garbage, chunk):
    garbage = [g.replace(b"\xa5", b"") for g in garbage] + [b""] * 7
    stream = b"".join(g + f.encode() for g, f in zip(garbage, frames)) + garbage[-1]
    receiver, got = Receiver(), []
    for i in range(0, len(stream), chunk):
        got += receiver.feed(stream[i:i + chunk])
    assert got == frames


@FAST
@given(stream=st.binary(max_size=400), chunk=st.integers(1, 64))
def test_receiver_finds_only_frames_whose_crc_is_right(stream, chunk):
    receiver = Receiver()
    for i in range(0, len(stream), chunk):
        for frame in receiver.feed(stream[i:i + chunk]):
            assert frame.encode() in stream


def test_receiver_work_per_byte_is_bounded_on_valid_looking_headers(monkeypatch):
    """``A5 04 00 FB FF`` repeated makes every fifth byte the header of a 1024-byte frame: each
    byte still takes one CRC table step, and each candidate frame one prefix-register check."""
    pattern = bytes([0xA5, 0x04, 0x00, 0xFB, 0xFF]) * 20_000  # 100 KB, 87 s on a 115200-baud wire
    steps, checks = [0], [0]
    step, check = protocol._crc_step, Receiver._crc

    def counted_step(register, byte):
        steps[0] += 1
        return step(register, byte)

    def counted_check(self, begin, end):
        checks[0] += 1
        return check(self, begin, end)

    monkeypatch.setattr(protocol, "_crc_step", counted_step)
    monkeypatch.setattr(Receiver, "_crc", counted_check)
    receiver = Receiver()
    for i in range(0, len(pattern), 997):
        assert receiver.feed(pattern[i:i + 997]) == []
    assert steps[0] == len(pattern)
    assert checks[0] <= pattern.count(0xA5)
    assert receiver.dropped > 19_000 and len(receiver.buffer) < MAX_PAYLOAD + 16


class HostileTransport:
    """A board that answers every request with the bytes hypothesis chose (then keeps silent)."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers, self.sent = list(answers), []

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def read(self, timeout: float) -> bytes:
        return self.answers.pop(0) if self.answers else b""

    def close(self) -> None:
        pass


def _answer(payload: bytes, command: int, sequence: int = 1) -> bytes:
    return Frame(sequence, command, payload).encode()


@FAST
@given(answers=st.lists(st.binary(max_size=30) | st.builds(_answer, st.binary(max_size=30), st.sampled_from([0x81, 0x84, 0x85, 0x86, 0xFF, 0x03]),
                                                            st.integers(0, 3)), max_size=4),
       request=st.sampled_from(["check", "train", "infer", "stats", "read"]))
def test_host_driver_takes_any_answer_or_raises_a_link_error(answers, request):
    link = BoardLink(HostileTransport(answers), SMALL.replace(training={"arith": "fixed"}), timeout=0.01, retries=1)
    x = np.zeros(6, np.int64)
    call = {"check": link.check, "train": lambda: link.train(x, 1), "infer": lambda: link.infer(x), "stats": link.stats, "read": link.read}[request]
    try:
        result = call()
    except LinkError:
        return
    if request in ("train", "infer"):
        assert 0 <= result.prediction < 3


def test_host_driver_refuses_short_answers_it_used_to_read_as_zeros():
    cfg = SMALL.replace(training={"arith": "fixed"})
    for request, command, payload in [("stats", 0x86, bytes(8)), ("train", 0x84, b"\x01"), ("infer", 0x85, b""), ("infer", 0x85, bytes([7, 0, 0, 0, 9]))]:
        link = BoardLink(HostileTransport([_answer(payload, command)]), cfg, timeout=0.01, retries=0)
        call = {"stats": link.stats, "train": lambda: link.train(np.zeros(6, np.int64), 1), "infer": lambda: link.infer(np.zeros(6, np.int64))}[request]
        with pytest.raises(LinkError):
            call()
    good = BoardLink(HostileTransport([_answer(info_bytes(cfg), 0x81)]), cfg, timeout=0.01, retries=0)
    good.check()
    with pytest.raises(ValueError):
        BoardLink(HostileTransport([]), cfg, retries=-1)


def test_json_output_writes_nan_as_null():
    assert json.loads(json_text({"a": float("nan"), "b": [float("inf"), 1.5]})) == {"a": None, "b": [None, 1.5]}
    assert crc16(b"123456789") == 0x29B1 and ANSWER == 0x80


def test_an_npy_header_numpy_cannot_tokenize_is_a_checkpoint_error(tmp_path):
    """An unclosed brace: numpy's header filter raises tokenize.TokenError, not ValueError."""
    buffer = io.BytesIO()
    np.save(buffer, np.array("eqprop-checkpoint"))
    raw = buffer.getvalue()
    brace = raw.rindex(b"}")
    path = tmp_path / "ck.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("format.npy", raw[:brace] + b" " + raw[brace + 1:])
    with pytest.raises(EqpropError, match="corrupt .npy header"):
        load_checkpoint(path)
