"""What the int8 guard sees of real 16-bit saturation on trained weights (issue 26): NNCF and PT2E
quantized with 8 bits on both sides, their remedy for CPUs without VNNI withheld, then checked by
`xception.deploy.int8.quantize_model` on the weights' calibration images.

Run it where oneDNN has no VNNI, on a real CPU without it or capped (tests/test_int8_isa.py says
which caps each runtime allows):

    ONEDNN_MAX_CPU_ISA=AVX512_CORE .venv/bin/python benchmarks/int8_remedy_withheld.py runs/demo/weights.safetensors
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="a single-label weight file of a training run")
    parser.add_argument("--calibration-size", type=int, default=300)
    args = parser.parse_args(argv)

    import xception.deploy.quantize as quantize
    from xception.cpu import cpu_features_text, cpu_has_vnni
    from xception.deploy.calibration import calibration_images
    from xception.deploy.int8 import quantize_model
    from xception.models.trained import open_weights

    print("CPU as oneDNN sees it:", cpu_features_text())
    if cpu_has_vnni():
        print("this CPU has VNNI: nothing saturates here; cap oneDNN below VNNI (ONEDNN_MAX_CPU_ISA=AVX512_CORE)")
        return 2
    quantize.cpu_has_vnni = lambda: True  # the remedy withheld: 8 bits on both sides
    model, _, description = open_weights(args.weights)
    calibration = calibration_images(description, count=args.calibration_size)
    for method in ("nncf", "pt2e"):
        try:
            _, _, check = quantize_model(model, method, calibration, image_size=description.image_size)
            print(f"{method} accepted: {check.text()}")
        except quantize.Int8RefusedError as error:
            print(f"{method} refused: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
