"""Networks and what they take in.

- ``networks``: the model registry (pretrained ImageNet networks as logits of 0..255 input);
- ``preprocess``: how an image becomes a model's input, without torch;
- ``weights``: every model's weights, found on the driver before anything starts;
- ``checkpoints``: local weights for a timm or torchvision architecture;
- ``images``: image file -> model input, original-pixel boxes -> input boxes and masks;
- ``image_cache``: decode once, per (image, preprocessing), prefetched.

Nothing is imported here: ``preprocess`` stays free of torch for the config.
"""
