"""Section 4.6's last paragraph: a non-residual VGG-style stack of depthwise separable convolutions
against Inception V3 at equal parameter count, on multi-label data (the paper's JFT)."""

from xception.experiments.definition import Arm, Claim, Comparison
from xception.models.xception import BlockSpec

# VGG-16's layout (stages of 2, 2, 3, 3, 3 convolutions, 64 -> 512 channels, a pool after each) with
# every convolution after the two-convolution stem separable, as data on Xception's builder: no
# residual connections anywhere, each separable convolution followed by BatchNorm and preceded by
# ReLU. The middle flow (plain 3-convolution blocks at 512 channels) is the depth knob for matching.
VGG_SEPARABLE: dict = {
    "residual": False,
    "stem_channels": (32, 64),
    "entry_flow": (
        BlockSpec((128, 128), first_activation=False, pool=True, residual=False),
        BlockSpec((256, 256, 256), pool=True, residual=False),
        BlockSpec((512, 512, 512), pool=True, residual=False),
    ),
    "middle_flow": BlockSpec((512, 512, 512), residual=False),
    "middle_repeats": 0,
    "exit_flow": (BlockSpec((512, 512, 512), pool=True, residual=False, end_activation=True),),
}

EXPERIMENT = Comparison(
    name="vgg_separable",
    paper_ref="Section 4.6 (last paragraph)",
    question="Is a plain, non-residual VGG-style stack of depthwise separable convolutions better than "
             "Inception V3 at equal parameter count on multi-label data?",
    task="mosaic",
    arms=(
        Arm("xception", "xception", match_to="inception_v3"),
        Arm("inception_v3", "inception_v3"),
        Arm("vgg_separable", "xception", VGG_SEPARABLE, match_to="inception_v3"),
    ),
    claims=(
        Claim("vgg_separable", "inception_v3",
              "Section 4.6: 'excellent results with non-residual VGG-style models ... superior to Inception V3 "
              "on JFT at equal parameter count' (no numbers given)"),
    ),
    caveats="The paper gives no numbers and no architecture for its VGG-style models; ours is VGG-16's "
            "layout with separable convolutions, our choice. JFT's scale and training length are far from "
            "our mosaics trained for minutes.",
)
