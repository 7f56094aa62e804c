"""The table indices that the BPF program (recorder.bpf.c) and Python share come from one Python
source; the program spells none of them itself.
"""

from __future__ import annotations

import re

from tracer.recorder.constants import bpf_defines
from tracer.recorder.kernel import BPF_SOURCE
from tracer.trace.format import CAP_OUTCOMES, KERNEL_LOST_REASONS, PHASES, RESULTS


def c_defines(prefix: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(rf"#define ({prefix}\w+) (\d+)", BPF_SOURCE.read_text())}


def test_c_and_python_agree_on_indices():
    """The program spells none of the shared indices itself: they come from one Python source."""
    for prefix in ("PHASE_", "RESULT_", "OUTCOME_", "LOST_", "REGS_"):
        assert c_defines(prefix) == {}, f"{prefix}* defined by hand in {BPF_SOURCE.name}"
    defines = bpf_defines()
    phases = {k: v for k, v in defines.items() if k.startswith("PHASE_")}
    assert {k: v for k, v in phases.items() if k in ("PHASE_RUNTIME", "PHASE_HANDOVER", "PHASE_STARTUP")} == {
        "PHASE_RUNTIME": 0,
        "PHASE_HANDOVER": 1,
        "PHASE_STARTUP": 2,
    }
    assert [PHASES[phases[f"PHASE_{p.upper()}"]] for p in ("runtime", "handover", "startup")] == [
        "runtime",
        "handover",
        "startup",
    ]
    results = {k.removeprefix("RESULT_"): v for k, v in defines.items() if k.startswith("RESULT_")}
    assert {name.upper(): i for i, name in enumerate(RESULTS)} == results
    outcomes = {k.removeprefix("OUTCOME_").lower(): v for k, v in defines.items() if k.startswith("OUTCOME_")}
    assert outcomes == {name: i for i, name in enumerate(CAP_OUTCOMES)}
    lost = {k.removeprefix("LOST_").lower(): v for k, v in defines.items() if k.startswith("LOST_")}
    assert [name for name, _ in sorted(lost.items(), key=lambda kv: kv[1])] == [
        "syscall_nr_out_of_range",
        "cap_out_of_range",
        "pending_map_full",
        "cap_map_full",
        "arg_map_full",
        "connect_map_full",
        "registers_unreadable",
        "container_slots_full",
    ]
    assert len(KERNEL_LOST_REASONS) == len(lost)
    used = set(re.findall(r"\b((?:PHASE|RESULT|OUTCOME|LOST|REGS)_[A-Z0-9_]+)\b", BPF_SOURCE.read_text()))
    assert used <= set(defines), f"used but never defined: {sorted(used - set(defines))}"
