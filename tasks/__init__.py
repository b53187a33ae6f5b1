"""The experiments as plain PyTorch: no Ray, files or MLflow in here."""
