"""Atomiton node type ``image`` (Pillow). Importing this package does not import Pillow."""

from __future__ import annotations

from atomiton_nodes_image.node import ImageParams, Point, image

__all__ = ["ImageParams", "Point", "image"]
