"""mloci: OCI-native packaging for machine-learning artifacts."""

__version__ = "0.1.0"
