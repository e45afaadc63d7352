"""See the package docstring of atomiton_core; the public names are re-exported there."""
