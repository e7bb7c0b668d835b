"""Function apps shipped with the project: samples to run and to copy."""
