"""pushforward-train: training, export and fixtures for pushforward (the `train/` folder).

Modules: models, data, export (safetensors writer/reader, export_model, load_model), train,
solvers, evaluate, classifier, rng, onnx_export (export_onnx: your own velocity network → ONNX
with the pushforward declaration), onnx_models, export_onnx, make_fixtures, make_reference,
make_digit_fixtures, make_onnx_fixtures, report, check_reference. Console commands:
pushforward-train, pushforward-evaluate, pushforward-export-onnx, pushforward-make-fixtures, …
(train/pyproject.toml). Importing the package imports nothing heavy.
"""

__version__ = "0.1.0"
