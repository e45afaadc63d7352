"""The version of atomiton-core, at the bottom of the layers so every module may read it."""

#: The version of the installed atomiton-core (PEP 440).
__version__ = "0.3.0"
