"""Container images: reproducible layers for models and apps on top of a base image."""
