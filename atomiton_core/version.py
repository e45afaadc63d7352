"""The version of atomiton-core, at the bottom of the layers so every module may read it."""

__version__ = "0.3.0"
