"""Table 2 and Figures 7-8: Xception against Inception V3, with and without fully-connected layers
in the head, on a multi-label task (here Fashion-MNIST mosaics, the paper's JFT), scored by MAP@100
with each class weighted by how common it is (the paper's FastEval14k metric)."""

from xception.experiments.definition import Arm, Claim, Comparison

EXPERIMENT = Comparison(
    name="jft_profile",
    paper_ref="Table 2, Figures 7-8",
    question="On multi-label data, does Xception beat Inception V3 at equal parameter count, with and "
             "without fully-connected layers before the logistic layer?",
    task="mosaic",
    arms=(
        Arm("xception", "xception", match_to="inception_v3"),
        Arm("inception_v3", "inception_v3"),
        # The paper's FC head: two layers of 4096 = 2 x the 2048 pooled features, scaled the same way.
        Arm("xception_fc", "xception", match_to="inception_v3_fc", fc_multiple=2),
        Arm("inception_v3_fc", "inception_v3", fc_multiple=2),
    ),
    claims=(
        Claim("xception", "inception_v3", "Table 2: FastEval14k MAP@100 6.70 (Xception) vs 6.36 (Inception V3)"),
        Claim("xception_fc", "inception_v3_fc", "Table 2: with FC layers 6.78 (Xception) vs 6.50 (Inception V3)"),
        Claim("xception_fc", "xception", "Table 2: the FC layers add 0.08 MAP@100 to Xception"),
        Claim("inception_v3_fc", "inception_v3", "Table 2: the FC layers add 0.14 MAP@100 to Inception V3"),
    ),
    caveats="JFT has 350 M images and 17,000 classes and the paper trained for a month; our mosaics have 10 "
            "classes and thousands of images, trained for minutes, so the networks are far from the "
            "convergence regime the paper compares. Matching counts with FC heads spends a large share of the "
            "parameters on the head (as the paper's 2 x 4096 head did), which leaves narrower trunks. "
            "The recipe is the Fashion-MNIST one with a sigmoid loss, not the paper's RMSprop (which barely "
            "moves in a few hundred steps).",
)
