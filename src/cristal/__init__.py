"""Cristal: an open, self-hostable enterprise AI platform.

The package is layered (see DESIGN.md): ``cli`` and ``server`` on top, the
work (``research``, ``operator``, ``agents``, ``workflows``, ``environments``)
below them, ``knowledge`` and ``models`` under that, and the spine
(``identity``, ``audit``, ``db``, ``config``) at the bottom.
"""

__version__ = "0.1.0"
