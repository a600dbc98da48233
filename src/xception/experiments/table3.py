"""Table 3: size and training speed of Xception and Inception V3 at 299 px, on this machine."""

from xception.experiments.definition import SpeedTable

EXPERIMENT = SpeedTable(
    name="table3",
    paper_ref="Table 3 (section 4.5.2)",
    question="How many parameters do the two networks have, and how many training steps per second does "
             "each take here, at the same batch size and precision?",
    models=("xception", "inception_v3"),
    image_size=299,
    num_classes=1000,
    paper={"xception": (22_855_952, 28.0), "inception_v3": (23_626_728, 31.0)},
    caveats="The paper's speeds are synchronous steps/s on 60 NVIDIA K80 GPUs with TensorFlow; ours are one "
            "process on this machine's CPU (and GPU when there is one) with PyTorch, so only the ratio "
            "Xception / Inception V3 is comparable. Depthwise convolutions are memory-bound and less "
            "optimised than dense ones on most hardware. Inception V3's count here follows torchvision "
            "(BatchNorm with gamma, no auxiliary tower); the paper's 23,626,728 matches no public "
            "configuration (FACTS.md).",
)
