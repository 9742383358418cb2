"""Boards: the registry, builds (what they refuse before any tool runs; the demo test builds a real one), flashing."""

import json
import os
import re
import socket
import threading

import pytest
from amaranth.hdl import Elaboratable, Module, Signal

from eqprop.boards.protocol import ANSWER, Command, Frame, Receiver
from eqprop.boards.requests import config_hash, info_bytes
from eqprop.boards.build import bitstream_name, read_reports, run_tools, soc_clock, tool_environment, tool_error
from eqprop.boards.registry import BOARDS, get_board
from eqprop.cli import board_config, build_parser
from eqprop.errors import ConfigError
from eqprop.hw.core import check_buildable
from eqprop.hw.estimate import estimate

from test_cli import run

def test_every_board_has_a_default_network_that_fits_and_a_uart_divisor():
    for board in BOARDS.values():
        cfg = board.default_config()
        check_buildable(cfg)  # raises when the network does not fit the board's FPGA
        assert cfg.hardware.fpga == board.fpga and board.divisor >= 4
        assert board.create_platform().default_clk_frequency == board.oscillator_hz


def test_configuration_options_keep_the_boards_hardware_options_and_a_file_for_the_board_its_own(tmp_path):
    board = get_board("icebreaker")
    args = build_parser().parse_args(["build", "--board", "icebreaker", "--seed", "7", "--out", str(tmp_path / "b")])
    cfg = board_config(args, board)
    assert cfg.training.seed == 7 and cfg.hardware == board.default_config().hardware
    assert (cfg.hardware.lanes, cfg.hardware.defer_input_updates) == (1, False)  # what fits the UP5K, not the preset's defaults
    mine = tmp_path / "mine.json"
    mine.write_text(board.default_config().replace(hardware={"lanes": 2}).to_json())
    args = build_parser().parse_args(["build", "--board", "icebreaker", "--config", str(mine), "--out", str(tmp_path / "b")])
    assert board_config(args, board).hardware.lanes == 2
    ulx3s = get_board("ulx3s-85f")  # the iCE40's literal input updates do not follow its configuration to the ECP5
    assert ulx3s.configure(board.default_config()).hardware == ulx3s.default_config().hardware
    args = build_parser().parse_args(["estimate", "--fpga", "ice40up5k", "--seed", "7"])  # --fpga names the board only
    assert board_config(args, board).hardware == board.default_config().hardware


class Counter(Elaboratable):
    """The smallest design with a clock, a flip-flop chain and both UART pins: a real build in seconds."""

    def elaborate(self, platform) -> Module:
        m = Module()
        uart, count = platform.request("uart", 0), Signal(8)
        m.d.sync += count.eq(count + uart.rx.i)
        m.d.comb += uart.tx.o.eq(count[-1])
        return m


def test_a_real_build_is_read_from_the_tools_json_reports_without_touching_the_environment(tmp_path, monkeypatch):
    """About 15 s: Yosys, nextpnr and icepack on a counter, the tools named only in the build script's environment."""
    board = get_board("icebreaker")
    env = tool_environment(board.fpga)
    assert not env.pop("missing")
    for variable in env:
        monkeypatch.delenv(variable, raising=False)
    before = dict(os.environ)
    run_tools(board, Counter(), env, tmp_path)
    assert dict(os.environ) == before and (tmp_path / bitstream_name(board.fpga)).stat().st_size > 0
    report = read_reports(board.fpga, tmp_path)
    resources, (clock,) = report["resources"], report["clocks"].values()
    # 8 counter bits and the reset synchronizer's flip-flops; a handful of logic cells, none of the hard blocks
    assert resources["FF"]["used"] >= 8 and 8 <= resources["LUT"]["used"] < 100 and resources["LUT"]["available"] == 5280
    assert all(resources[kind]["used"] == 0 for kind in ("RAM", "SPRAM", "DSP")) and resources["SPRAM"]["available"] == 4
    assert clock["required"] == pytest.approx(12.0, abs=1e-3) and clock["achieved"] > clock["required"]
    log = (tmp_path / "eqprop.tim").read_text()  # the same figures as nextpnr's log says them, after routing
    assert f"{clock['achieved']:.2f} MHz (PASS at 12.00 MHz)" in log.rsplit("Max frequency", 1)[-1]
    assert re.search(rf"ICESTORM_LC:\s+{resources['LUT']['used']}/\s+5280\s", log)


@pytest.mark.slow
def test_the_wishbone_slave_alone_builds_for_the_icebreaker_with_timing_met(tmp_path, capsys):
    """About 70 s: `eqprop build --bus wishbone` of the board's default network."""
    board = get_board("icebreaker")
    code, stdout, _ = run(capsys, "build", "--board", "icebreaker", "--bus", "wishbone", "--out", str(tmp_path / "wb"), "--json")
    report = json.loads(stdout)
    written = json.loads((tmp_path / "wb" / "report.json").read_text())
    assert code == 0 and report["bus"] == "wishbone" and report["timing_met"] and written.pop("provenance") and report == written
    assert soc_clock(report)["achieved"] >= soc_clock(report)["required"] == pytest.approx(board.clock_hz / 1e6, abs=1e-3)
    # the core as the estimate counts it, and the slave's input window in one more RAM block
    (core,) = estimate(board.default_config(), [1])
    used = {kind: r["used"] for kind, r in report["resources"].items()}
    assert (used["DSP"], used["SPRAM"], used["RAM"]) == (core.dsp, core.spram, core.ram_blocks + 1)


def test_the_soc_clock_is_the_slowest_clock_constrained_to_the_socs_frequency():
    report = {"soc_clock_mhz": 6.0, "clocks": {"osc": {"achieved": 15.5, "required": 12.0}, "a": {"achieved": 10.7, "required": 6.0},
                                               "b": {"achieved": 9.9, "required": 6.0}}}
    assert soc_clock(report) == {"achieved": 9.9, "required": 6.0}


def test_build_refuses_networks_the_board_cannot_hold_and_unknown_boards(tmp_path, capsys):
    code, _, err = run(capsys, "build", "--board", "icebreaker", "--lanes", "3", "--out", str(tmp_path / "ice"))
    assert code == 2 and "need 12 SPRAMs" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "build", "--board", "nosuch", "--out", str(tmp_path / "x"))
    assert code == 2 and "unknown board 'nosuch'" in err
    assert not (tmp_path / "ice").exists() and not (tmp_path / "x").exists()
    assert get_board("icebreaker").fpga == "ice40up5k"


def test_flash_names_the_exact_command_or_says_why_it_cannot(tmp_path, capsys):
    from eqprop.boards.flash import flash_command

    build = tmp_path / "ice"
    build.mkdir()
    (build / "eqprop.bin").write_bytes(b"\x00")
    (build / "report.json").write_text(json.dumps({"board": "icebreaker", "bitstream": "/elsewhere/other.bin"}))
    board = get_board("icebreaker")
    assert flash_command(board, build, available=lambda tool: tool == "openFPGALoader") == [
        "openFPGALoader", "-b", "icebreaker", "-f", str(build / "eqprop.bin")]
    code, stdout, _ = run(capsys, "flash", "--board", "icebreaker", str(build), "--dry-run")
    assert code == 0 and stdout.strip() == f"iceprog {build / 'eqprop.bin'}"
    code, _, err = run(capsys, "flash", "--board", "ulx3s-85f", str(build), "--dry-run")
    assert code == 2 and "built for icebreaker, not ulx3s-85f" in err
    code, _, err = run(capsys, "flash", "--board", "icebreaker", str(tmp_path / "none"))
    assert code == 2 and "no build" in err and err.count("\n") == 1


def test_board_train_needs_exactly_one_transport_and_names_a_port_it_cannot_open(tmp_path, capsys):
    code, _, err = run(capsys, "board", "train", "--board", "icebreaker", "--sim", "--port", "/dev/ttyUSB9", "--out", str(tmp_path / "o"))
    assert code == 2 and "either --port" in err
    code, _, err = run(capsys, "board", "train", "--board", "icebreaker", "--port", str(tmp_path / "no-such-port"), "--out", str(tmp_path / "o"))
    assert code == 2 and "cannot open" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_a_failed_build_names_the_tools_first_error_and_the_logic_cells_it_lacked(tmp_path):
    assert tool_error(tmp_path, "ice40up5k") == ""
    (tmp_path / "eqprop.tim").write_text("Info: Packing..\nERROR: Failed to expand region (0, 0) |_> (25, 31) of 6180 ICESTORM_LCs\n"
                                         "ERROR: a later one\n")
    assert tool_error(tmp_path, "ice40up5k") == ("Failed to expand region (0, 0) |_> (25, 31) of 6180 ICESTORM_LCs "
                                                 "(the design needs 6,180 logic cells, the ice40up5k has 5,280)")
    (tmp_path / "eqprop.rpt").write_text("ERROR: Module `top' not found!\n")  # Yosys's log, read first: it ran first
    assert tool_error(tmp_path, "ice40up5k") == "Module `top' not found!"


@pytest.mark.parametrize("output_mhz", [50, 75, 100, 12.5])
def test_the_ecp5_pll_makes_the_clock_exactly_within_its_limits(output_mhz):
    from eqprop.boards.clocks import ECP5_PFD_HZ, ECP5_VCO_HZ, ecp5_pll_dividers

    output = int(output_mhz * 1e6)
    pll = ecp5_pll_dividers(25_000_000, output)
    assert 25_000_000 * pll.clkfb_div == output * pll.clki_div
    assert ECP5_PFD_HZ[0] <= 25_000_000 / pll.clki_div <= ECP5_PFD_HZ[1]
    assert ECP5_VCO_HZ[0] <= output * pll.clkop_div <= ECP5_VCO_HZ[1]


@pytest.mark.parametrize("output_mhz", [18, 24, 30, 16.875])
def test_the_ice40_pll_makes_the_clock_exactly_within_its_limits(output_mhz):
    from eqprop.boards.clocks import ICE40_PFD_HZ, ICE40_VCO_HZ, ice40_pll_dividers

    output = int(output_mhz * 1e6)
    pll = ice40_pll_dividers(12_000_000, output)
    assert 12_000_000 * (pll.divf + 1) == output * (pll.divr + 1) * 2**pll.divq
    assert ICE40_PFD_HZ[0] <= 12_000_000 / (pll.divr + 1) <= ICE40_PFD_HZ[1]
    assert ICE40_VCO_HZ[0] <= output * 2**pll.divq <= ICE40_VCO_HZ[1]
    assert pll.filter_range == 1  # a 12 MHz phase detector input, as icepll sets it


def test_a_clock_the_board_cannot_make_is_refused():
    from amaranth.hdl import Module

    from eqprop.boards.clocks import ecp5_pll_dividers, soc_domain

    with pytest.raises(ConfigError, match="divided by an integer"):
        soc_domain(Module(), None, "generic", 12_000_000, 24_000_000)
    with pytest.raises(ConfigError, match="iCE40 PLL cannot make 17 MHz"):  # 17 MHz x 2^q is no multiple of 12 MHz
        soc_domain(Module(), None, "ice40up5k", 12_000_000, 17_000_000)
    with pytest.raises(ConfigError, match="cannot make"):
        ecp5_pll_dividers(25_000_000, 1_000_003)


def test_a_port_may_be_a_pyserial_url(tmp_path, capsys):
    """loop:// echoes the host's own INFO request back; socket:// reaches a server that answers as another board would."""
    code, _, err = run(capsys, "board", "train", "--board", "icebreaker", "--port", "loop://", "--retries", "0", "--samples", "1", "--test-samples", "1")
    assert code == 2 and "answered INFO with command 0x01" in err and err.count("\n") == 1

    other = get_board("icebreaker").default_config().replace(learning={"T1": 3})
    server = socket.create_server(("127.0.0.1", 0))

    def answer_one_request():
        connection, _ = server.accept()
        with connection:
            frames, receiver = [], Receiver()
            while not frames:
                frames = receiver.feed(connection.recv(4096))
            connection.sendall(Frame(frames[0].sequence, Command.INFO | ANSWER, info_bytes(other)).encode())
            connection.recv(1)  # until the host closes

    thread = threading.Thread(target=answer_one_request, daemon=True)
    thread.start()
    url = f"socket://127.0.0.1:{server.getsockname()[1]}"
    code, _, err = run(capsys, "board", "train", "--board", "icebreaker", "--port", url, "--samples", "1", "--test-samples", "1")
    thread.join(timeout=10)
    server.close()
    assert code == 2 and f"the board runs configuration {config_hash(other):08x}, not this one" in err
