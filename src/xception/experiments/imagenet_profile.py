"""Table 1 and Figure 6: Xception against Inception V3, at equal parameter count, under the same
recipe on single-label data (here Fashion-MNIST, the paper's ImageNet)."""

from xception.experiments.definition import Arm, Claim, Comparison

EXPERIMENT = Comparison(
    name="imagenet_profile",
    paper_ref="Table 1, Figure 6",
    question="Does Xception reach a higher accuracy than Inception V3 with the same number of parameters, "
             "the same recipe and the same budget?",
    task="fashion_mnist",
    arms=(
        # Inception V3's width moves its count in coarse steps, so Xception (width and middle-flow
        # depth) is the one matched; when the scale's two base networks agree within 5%, both stay.
        Arm("xception", "xception", match_to="inception_v3"),
        Arm("inception_v3", "inception_v3"),
    ),
    claims=(
        Claim("xception", "inception_v3",
              "Table 1: ImageNet top-1 0.790 (Xception) vs 0.782 (Inception V3); Figure 6: Xception ahead "
              "through most of training"),
    ),
    caveats="The paper's gap is 0.8 points of top-1 on 1.28 M ImageNet photographs after ~100 epochs on 60 "
            "GPUs. Here both networks are scaled down ~100x (same parameter count), see 28 px grayscale images "
            "of 10 classes for a few epochs, and Fashion-MNIST saturates near 93-95 %: a gap of the paper's "
            "size is smaller than the seed-to-seed spread at this budget. Our stride-1 stems and 'same' "
            "padding for Inception V3 are additions for 28 px images; the recipe is a short cosine schedule, "
            "not the paper's 100-epoch staircase.",
)
