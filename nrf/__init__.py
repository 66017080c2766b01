"""nrf: universal adversarial perturbations and non-robust features, reproduced.

The package is the attack, training and analysis core behind the book in `book/`.
Modules: `data` (CIFAR-10, ImageNet-M10, on-device augmentation), `models`, `train`,
`attacks`, `store` (artifact store), `runtime` (devices, seeds, provenance).
"""

__version__ = "0.2.0"
