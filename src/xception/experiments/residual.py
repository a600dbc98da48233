"""Figure 9: Xception with and without its residual connections."""

from xception.experiments.definition import Arm, Claim, Comparison

EXPERIMENT = Comparison(
    name="residual",
    paper_ref="Figure 9 (section 4.6)",
    question="How much do the residual connections help Xception converge, in speed and final accuracy?",
    task="fashion_mnist",
    # NOTE(paper): as in Figure 9, the same network without its shortcuts (not re-matched: dropping
    # the four strided 1x1 shortcut convolutions removes a few percent of the parameters).
    arms=(
        Arm("xception", "xception"),
        Arm("no_residual", "xception", {"residual": False}),
    ),
    claims=(
        Claim("xception", "no_residual",
              "Figure 9: 'residual connections are clearly essential in helping with convergence, both in "
              "terms of speed and final classification performance' (ImageNet)"),
    ),
    caveats="Our scaled network has a shallow middle flow (a few blocks instead of 8), and a shallow "
            "non-residual stack is far easier to optimise than the paper's 36-layer one; the paper itself "
            "notes that the same optimisation configuration may be uncharitable to the non-residual model.",
)
