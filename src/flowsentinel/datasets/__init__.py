"""Data sets: readers for every dialect, download, built-in demo data."""

from flowsentinel.core.schema import DATASETS
from flowsentinel.datasets.cache import ColumnarCache
from flowsentinel.datasets.download import download_dataset
from flowsentinel.datasets.labels import TASKS
from flowsentinel.datasets.reader import FileReport, read_file, sniff
from flowsentinel.datasets.sources import LoadedData, expand_sources, load_sources
from flowsentinel.datasets.synthetic import generate_flows, write_demo_dataset

__all__ = [
    "DATASETS",
    "TASKS",
    "ColumnarCache",
    "FileReport",
    "LoadedData",
    "download_dataset",
    "expand_sources",
    "generate_flows",
    "load_sources",
    "read_file",
    "sniff",
    "write_demo_dataset",
]
