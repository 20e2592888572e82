"""Models: one entry per architecture; an entry names its builder, imported only when a model is
built, so listing models and their options imports no torch (issue 18). Adding a model is writing
its builder(meta, **options) and adding one entry here."""
from dlx.models.registry import MODELS, build_model, check_model_fits, register_model

register_model("cnn", ("image",), "small CNN: Conv 32-64, max-pool, FC 128",
               "dlx.models.cnn:cnn")
register_model("mlp", ("table", "image"), "multi-layer perceptron: Linear-ReLU-Dropout blocks",
               "dlx.models.mlp:mlp")
register_model("resnet18", ("image",), "torchvision ResNet-18, stem adapted to small images",
               "dlx.models.resnet:resnet18")
register_model("vit", ("image",), "small vision transformer: patches to fit the image "
               "(8×8 digits: 2×2 patches), 2 layers, 4 heads, 64 wide",
               "dlx.models.vit:vit")
register_model("minilm", ("text",), "pretrained MiniLM-L6 (6 layers, 12 heads, 384 wide) fine-tuned "
               "with a classification head; freeze_layers keeps the lower layers fixed",
               "dlx.models.text_minilm:minilm")
register_model("transformer", ("text",), "small transformer trained from scratch (BERT layout, "
               "MiniLM's word pieces): 2 layers, 4 heads, 64 wide by default",
               "dlx.models.text_transformer:transformer")

__all__ = ["MODELS", "build_model", "check_model_fits", "register_model"]
