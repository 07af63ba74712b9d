"""``convscope explore``: a local web app over the library (FastAPI API + a front end shipped in ``static/``).

Views: image (predictions, every attribution method, live occlusion), layer (channels, projections,
feature visualisation, top patches), data set (a scan's embedding, neighbours, dead filters) and model
(filters, per-layer statistics). Every view's state lives in the URL.
"""

from convscope.explore.app import create_app
from convscope.explore.state import Explorer

__all__ = ["Explorer", "create_app"]
