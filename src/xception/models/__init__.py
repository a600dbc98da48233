"""Xception, its Inception V3 baseline and the paper's ablations, behind one interface."""

from xception.models.factory import create_model
from xception.models.features import FeatureExtractor, FeatureInfo
from xception.models.inception_v3 import InceptionV3, InceptionV3Config
from xception.models.layers import SamePadMaxPool2d, SeparableConv2d
from xception.models.registry import MODELS, list_models
from xception.models.weights.registry import WEIGHTS, WeightsEntry, list_weights
from xception.models.xception import BlockSpec, Xception, XceptionConfig

__all__ = [
    "MODELS",
    "WEIGHTS",
    "BlockSpec",
    "FeatureExtractor",
    "FeatureInfo",
    "InceptionV3",
    "InceptionV3Config",
    "SamePadMaxPool2d",
    "SeparableConv2d",
    "WeightsEntry",
    "Xception",
    "XceptionConfig",
    "create_model",
    "list_models",
    "list_weights",
]
