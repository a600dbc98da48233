"""int8 right on every x86 CPU: the guard that refuses a wrong int8 model, each method's remedy for
CPUs without VNNI, and the int8 tests of tests/test_deploy.py run again with oneDNN capped to an
older instruction set (`ONEDNN_MAX_CPU_ISA`) where this CPU is newer.

Which emulations are possible (checked on a Xeon with AMX, torch 2.14.1, OpenVINO 2026.4.1):
- PyTorch (PT2E): `ONEDNN_MAX_CPU_ISA=AVX2` with `ATEN_CPU_CAPABILITY=avx2`; without its remedy the
  int8 model saturates there exactly as on an AVX2-only EPYC (relative error 0.69 both);
- OpenVINO (NNCF): `ONEDNN_MAX_CPU_ISA=AVX512_CORE` (AVX-512 without VNNI: the same vpmaddubsw
  16-bit sums, saturated at 0.68 without the remedy); capped at AVX2 OpenVINO's CPU plugin crashes
  (SIGSEGV) on this machine, so AVX2 itself is not emulated for it;
- onnxruntime: its kernels ignore the cap (they pick VNNI from the hardware), so only the choice of
  7-bit weights is emulated, not the arithmetic; an AVX2-only EPYC ran it for real (issue 26).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from xception.cpu import cpu_has_vnni, hardware_flags
from xception.deploy.int8 import DECISIVE_MARGIN, MAX_RELATIVE_ERROR, check_int8

ROOT = Path(__file__).resolve().parent.parent


def test_check_int8_against_hand_computed_figures():
    reference = torch.tensor([[10.0, 0.0, 1.0], [4.0, 5.0, 0.0], [0.0, 1.0, 9.0]])
    # Image 1's fp32 margin (1) is under DECISIVE_MARGIN of the largest logit (2.5): its flip counts
    # in the agreement, not against the bound.
    candidate = torch.tensor([[9.0, 0.5, 1.0], [5.5, 4.5, 0.0], [0.0, 1.0, 8.0]])
    check = check_int8(reference, candidate)
    assert DECISIVE_MARGIN * 10 == 2.5
    assert check.images == 3 and check.relative_error == pytest.approx(1.5 / 10)
    assert check.agreement == pytest.approx(2 / 3)
    assert (check.decisive_images, check.decisive_agreement) == (2, 1.0) and check.passed
    # A flip of a clear decision (margin 2.6) with a small error (0.14): refused on the agreement.
    clear = torch.cat([reference, torch.tensor([[10.0, 7.4, 0.0]])])
    flipped = torch.cat([candidate, torch.tensor([[8.7, 8.8, 0.0]])])
    check = check_int8(clear, flipped)
    assert check.relative_error == pytest.approx(0.15) and check.decisive_agreement == pytest.approx(2 / 3)
    assert not check.passed
    # Every top-1 kept but an error of order 1: refused on the error; just under the bound: passed.
    assert not check_int8(reference, reference + 6.0 * (torch.arange(3) == 1)).passed
    assert check_int8(reference, reference + 0.4 * 10 * (torch.arange(3) == 1)).passed
    assert MAX_RELATIVE_ERROR == 0.5


def test_quantize_model_refuses_a_saturated_int8_model_with_its_figures(monkeypatch, one_thread):
    """A planted saturation: the int8 engine's logits clipped as 16-bit sums clip large products.
    The guard must refuse it before anything is returned."""
    pytest.importorskip("onnxruntime")
    import xception.deploy.int8 as int8
    from test_deploy import calibrated_model
    from xception.deploy.engines import Engine
    from xception.deploy.quantize import Int8RefusedError

    real = int8.onnxruntime_engine

    def saturating(path, **kwargs):
        engine = real(path, **kwargs)
        return Engine(engine.runtime, engine.precision, engine.description,
                      lambda images: engine(images).clamp(-0.2, 0.2) * 5)

    monkeypatch.setattr(int8, "onnxruntime_engine", saturating)
    model, images = calibrated_model()
    with pytest.raises(Int8RefusedError, match=r"onnxruntime int8 refused: its outputs are too far from fp32's "
                       r"\(relative logit error [0-9.]+ \(bound 0\.5\), top-1 agreement .*; on this CPU \(AVX"):
        int8.quantize_model(model, "onnxruntime", images, image_size=32)


def test_a_saved_int8_model_made_with_vnni_is_refused_on_a_cpu_without(tmp_path, monkeypatch):
    import xception.deploy.quantize as quantize

    (tmp_path / "int8.json").write_text(json.dumps({"cpu": {"vnni": True}}))
    monkeypatch.setattr(quantize, "cpu_has_vnni", lambda: False)
    with pytest.raises(quantize.Int8RefusedError, match=r"int8_pt2e.pt2 was quantized on a CPU with VNNI .*"
                       r"Quantize again here: xception quantize"):
        quantize.load_quantized(tmp_path / "int8_pt2e.pt2")


def _emulated(isa: str) -> dict[str, str]:
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA=isa, PYTHONPATH=str(ROOT / "tests"))
    if isa == "AVX2":
        env["ATEN_CPU_CAPABILITY"] = "avx2"
    return env


def _needs_a_newer_cpu(isa: str) -> None:
    if not cpu_has_vnni():
        pytest.skip("this CPU has no VNNI: the suite's own int8 tests already take the path without it")
    if isa == "AVX512_CORE" and "avx512f" not in hardware_flags():
        pytest.skip("AVX-512 without VNNI cannot be emulated on a CPU without AVX-512")


@pytest.mark.slow  # a pytest process per runtime: 20-60 s each on 2 cores
@pytest.mark.parametrize("isa,case", [
    ("AVX2", "torch-torchao"), ("AVX2", "onnxruntime-onnxruntime"), ("AVX512_CORE", "openvino-nncf"),
])
def test_int8_engines_stay_close_to_fp32_under_an_emulated_cpu_without_vnni(isa, case):
    _needs_a_newer_cpu(isa)
    test = f"tests/test_deploy.py::test_int8_engine_stays_close_to_fp32[{case}]"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test], cwd=ROOT,
                         env=_emulated(isa), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]


PLANTED = """
import sys
import xception.deploy.quantize as quantize
from test_deploy import calibrated_model
from xception.cpu import cpu_has_vnni
from xception.deploy.int8 import quantize_model
from xception.deploy.quantize import Int8RefusedError

assert not cpu_has_vnni()
quantize.cpu_has_vnni = lambda: True  # the remedy withheld: 8 bits on both sides
model, images = calibrated_model()
try:
    quantize_model(model, sys.argv[1], images, image_size=32)
except Int8RefusedError as error:
    print("REFUSED", error)
else:
    print("ACCEPTED")
"""


@pytest.mark.slow
@pytest.mark.parametrize("isa,method,module", [("AVX2", "pt2e", "torchao"), ("AVX512_CORE", "nncf", "nncf")])
def test_the_guard_refuses_real_saturation_where_the_remedy_is_withheld(isa, method, module):
    """Real 16-bit saturation, not a planted one: the method's own int8 model without its remedy,
    run by oneDNN capped to an ISA without VNNI (or on such a CPU), is refused by the guard."""
    pytest.importorskip(module)
    if cpu_has_vnni():
        _needs_a_newer_cpu(isa)
    run = subprocess.run([sys.executable, "-c", PLANTED, method], cwd=ROOT, env=_emulated(isa),
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"REFUSED {method} int8 refused: its outputs are too far from fp32's" in run.stdout, run.stdout[-2000:]
