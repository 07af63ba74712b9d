"""An atlas of every channel of chosen layers, browsable as a static web site (``convscope atlas``)."""
