"""Figure 10: no activation, ReLU or ELU between the depthwise and the pointwise convolution."""

from xception.experiments.definition import Arm, Claim, Comparison

EXPERIMENT = Comparison(
    name="mid_activation",
    paper_ref="Figure 10 (section 4.7)",
    question="Should a depthwise separable convolution have a non-linearity between its depthwise and "
             "pointwise operations?",
    task="fashion_mnist",
    # An activation has no parameters: all three arms have the same count.
    arms=(
        Arm("none", "xception"),
        Arm("relu", "xception", {"mid_activation": "relu"}),
        Arm("elu", "xception", {"mid_activation": "elu"}),
    ),
    claims=(
        Claim("none", "relu", "Figure 10: no intermediate activation converges faster and ends better than ReLU"),
        Claim("none", "elu", "Figure 10: no intermediate activation converges faster and ends better than ELU"),
    ),
    caveats="The paper's explanation (a non-linearity on 1-channel-deep feature spaces loses information) "
            "concerns ImageNet-scale networks; our networks are ~100x narrower, trained for minutes, where "
            "the extra non-linearity may act differently, and the differences may fall inside seed noise.",
)
