"""Sections 1.2 and 5: the spectrum between regular convolutions (1 segment) and depthwise separable
convolutions (one segment per channel), with Inception-like points (3-4 segments) between; and the
order of the two operations (depthwise first, as Xception, or pointwise first, as Inception)."""

from xception.experiments.definition import Arm, Claim, Comparison

EXPERIMENT = Comparison(
    name="spectrum",
    paper_ref="Sections 1.2 and 5 (the question the paper leaves open)",
    question="At equal parameter count, where on the spectrum from regular to depthwise separable "
             "convolutions is accuracy best, and at what training speed? Does the order of depthwise and "
             "pointwise matter?",
    task="fashion_mnist",
    # Every arm's width (and middle-flow depth) is matched to the depthwise network's parameter count:
    # fewer segments cost more parameters per layer, so those networks are narrower.
    arms=(
        Arm("depthwise", "xception"),
        Arm("segments_8", "xception", {"segments": 8}, match_to="depthwise"),
        Arm("segments_4", "xception", {"segments": 4}, match_to="depthwise"),
        Arm("segments_2", "xception", {"segments": 2}, match_to="depthwise"),
        Arm("segments_1", "xception", {"segments": 1}, match_to="depthwise"),
        Arm("pointwise_first", "xception", {"order": "pointwise_first"}, match_to="depthwise"),
    ),
    claims=(
        Claim("depthwise", "segments_4",
              "Sections 4-6: the extreme (depthwise) form outperforms Inception modules, which lie near 3-4 "
              "segments; section 5 leaves open whether intermediate points do better still"),
        Claim("depthwise", "pointwise_first",
              "Section 1.2: the order of the operations 'is probably unimportant' in a stacked setting",
              expect="similar"),
    ),
    caveats="The paper does not run this experiment, it poses the question. At equal parameters, fewer "
            "segments force much narrower networks, and on 28 px images a few thousand steps may favour "
            "whatever trains fastest; speeds on a shared 2-core CPU are noisy, and grouped convolutions are "
            "not equally well optimised in PyTorch's CPU kernels for every group count.",
    measure_speed=True,
)
