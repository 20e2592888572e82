"""Models: importing this package registers every built-in architecture."""
from dlx.models import cnn, mlp, resnet, vit  # noqa: F401  (registers entries)
from dlx.models import text_minilm, text_transformer  # noqa: F401,I001  (text models, after image ones)
from dlx.models.registry import MODELS, build_model, check_model_fits, register_model

__all__ = ["MODELS", "build_model", "check_model_fits", "register_model"]
