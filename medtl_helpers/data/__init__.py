"""Data layer: sources (Kermany folder, PneumoniaMNIST, synthetic), splits, cache, augmentation."""
