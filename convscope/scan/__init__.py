"""Scan a picture set once: features, top activations and channel statistics of chosen layers, and the
views built on them — top patches, dead filters, nearest neighbours, PCA / t-SNE / UMAP maps."""

from convscope.scan.receptive_field import ReceptiveField, receptive_fields
from convscope.scan.result import ScanResult
from convscope.scan.runner import Scan
from convscope.scan.statistics import ChannelStatistics
from convscope.scan.top import TopActivations

__all__ = ["ChannelStatistics", "ReceptiveField", "Scan", "ScanResult", "TopActivations", "receptive_fields"]
