"""mlci: Jenkins-native CI/CD for machine-learning projects."""

__version__ = "0.1.0"
