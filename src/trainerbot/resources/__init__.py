"""Files shipped with the package: the instructions (English, Russian) and the sample dataset."""
