"""Networks and what they take in: the model registry, preprocessing, weights, images.

- ``networks`` (was ``models.py``)
- ``preprocess`` (was ``preprocess.py``)
- ``weights`` (was ``weights.py``)
- ``checkpoints`` (was ``checkpoints.py``)
- ``images`` (was ``images.py``)
- ``image_cache`` (was ``image_cache.py``)

Nothing is imported here: import the module you need.
"""
