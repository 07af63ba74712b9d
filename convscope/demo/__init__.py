"""The demo gallery: every technique on the embedded model and the bundled photos, as one web page."""

from convscope.demo.gallery_run import DemoContext, run_demo

__all__ = ["DemoContext", "run_demo"]
