"""cts-desktop: a desktop crypto trading system.

Only ``cts_desktop.ui`` (and the composition root in ``cts_desktop.app``) may import Qt;
everything else runs headless.
"""

__version__ = "0.1.0"
