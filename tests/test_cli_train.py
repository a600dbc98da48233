"""`xception train/eval/predict/demo`: bad input stops with a clear message before any work, and
predict prints the top-k classes of a saved model with the right probabilities."""

from pathlib import Path

import pytest
import torch
from PIL import Image

from xception.cli import main
from xception.models import create_model
from xception.models.weights import save_weights


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--recipe", "paper_imagenets"], "unknown recipe 'paper_imagenets'; valid: fashion_mnist_demo"),
    (["train", "--model", "xceptoin"], "unknown model 'xceptoin'"),
    (["train", "--precision", "fp16", "--device", "cpu"], "fp16 needs a CUDA GPU"),
    (["train", "--data", "/no/such/dir"], "data path /no/such/dir does not exist"),
    (["train", "--set", "epochz=3"], "unknown --set key 'epochz'"),
    (["train", "--set", "recipe.learning_rate=1"], "unknown recipe field(s) ['learning_rate']"),
    (["train", "--model", "xception_small", "--set", "model.widht=2"], "unknown model 'xception_small' field(s) ['widht']"),
    (["train", "--set", "epochs"], "--set expects key=value"),
    (["train", "--config", "/no/such.toml"], "config file /no/such.toml does not exist"),
    (["train", "--resume", "/no/such/run"], "no checkpoint at /no/such/run"),
    (["train", "--batch-size", "10", "--accumulation-steps", "3"], "multiple of accumulation"),
    (["train", "--dataset", "imagefolder"], "needs a path"),
    (["predict", "/no/image.png", "--weights", "w.safetensors"], "no such image file: /no/image.png"),
    (["eval", "--weights", "/no/w.safetensors"], "weight file '/no/w.safetensors' does not exist"),
])
def test_cli_bad_input_stops_with_a_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # stopped before any work


def test_cli_unknown_option_is_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["train", "--learning-rate", "0.1"])
    assert stop.value.code == 2 and "unrecognized arguments: --learning-rate" in capsys.readouterr().err


def test_cli_train_config_file_and_overrides_layer(tmp_path):
    from xception.cli import build_parser
    from xception.cli.train import build_config

    (tmp_path / "run.toml").write_text('model = "xception_small"\nbatch_size = 64\n[data]\nsource = "fashion_mnist"\n'
                                       'image_size = 28\nin_channels = 1\n')
    args = build_parser().parse_args(["train", "--config", str(tmp_path / "run.toml"), "--batch-size", "32",
                                      "--set", "recipe.lr=0.2", "--set", "model.fc_layers=[16]", "--set", "epochs=2"])
    config = build_config(args)
    assert (config.model, config.batch_size, config.epochs) == ("xception_small", 32, 2)  # flag beats file
    assert config.recipe_overrides == {"lr": 0.2} and config.model_overrides == {"fc_layers": (16,)}
    assert config.data.in_channels == 1 and config.data.image_size == 28


SHIPPED_CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", SHIPPED_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_build(path):
    """Every preset in configs/ builds a checked TrainConfig as `xception train --config` does."""
    from xception.cli import build_parser
    from xception.cli.train import build_config

    assert build_config(build_parser().parse_args(["train", "--config", str(path)])).to_dict()


def test_the_segmentation_preset_is_the_run_the_readme_reports():
    from xception.cli import build_parser
    from xception.cli.train import build_config
    from xception.train.recipes import get_recipe

    config = build_config(build_parser().parse_args(["train", "--config", str(SHIPPED_CONFIGS[0].with_name("mosaic_segmentation.toml"))]))
    recipe = get_recipe(config.recipe, **config.recipe_overrides)
    epochs = config.epochs if config.epochs is not None else recipe.epochs
    # docs/segmentation.md: "6,000 training mosaics x 2 epochs (750 steps of 16)", lr 6.4 (chosen on validation mosaics).
    assert (config.data.mosaic_train_size, epochs, config.batch_size, recipe.lr) == (6000, 2, 16, 6.4)
    assert config.data.mosaic_train_size * epochs // config.batch_size == 750


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime", "openvino"])
def test_cli_predict_prints_top_k_names_and_probabilities(runtime, tmp_path, capsys):
    if runtime != "torch":
        pytest.importorskip(runtime)
    torch.manual_seed(0)
    model = create_model("xception_small", num_classes=10, in_channels=1, width=0.125, middle_repeats=1)
    with torch.no_grad():  # make the prediction depend on the image: a biased classifier
        model.classifier.bias.copy_(torch.linspace(-2, 2, 10))
    names = [f"garment {k}" for k in range(10)]
    data = {"source": "fashion_mnist", "path": None, "image_size": 28, "in_channels": 1}
    weights = save_weights(model, tmp_path / "w.safetensors", metadata={"class_names": names, "data": data})
    pixels = (torch.arange(28 * 28) % 256).reshape(28, 28).to(torch.uint8)
    Image.fromarray(pixels.numpy(), mode="L").save(tmp_path / "item.png")

    assert main(["predict", str(tmp_path / "item.png"), "--weights", str(weights), "--top-k", "3",
                 "--device", "cpu", "--precision", "fp32", "--runtime", runtime]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith("runtime: ") and "(--runtime given)" in captured.err
    assert {"torch": "PyTorch", "onnxruntime": "onnxruntime", "openvino": "INFERENCE_PRECISION_HINT=f32"}[runtime] in captured.err
    lines = captured.out.splitlines()
    # Independently: x / 127.5 - 1 of the 28 x 28 image, the model in eval mode, a softmax.
    expected = model.eval()((pixels.float() / 127.5 - 1)[None, None]).softmax(dim=1)[0]
    top = expected.topk(3)
    assert lines[0].endswith("item.png") and len(lines) == 4
    for line, p, k in zip(lines[1:], top.values.tolist(), top.indices.tolist(), strict=True):
        probability, name = line.split(maxsplit=1)
        assert name == names[k] and float(probability) == pytest.approx(p, abs=1e-4)
