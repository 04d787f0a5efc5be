"""Episodes on disk in LeRobot's v3.0 dataset layout: a crash-safe writer and a validating reader.

``EpisodeWriter`` appends pick-and-place demonstrations (one parquet file per episode, written
atomically) and keeps ``meta/`` consistent; ``EpisodeDataset`` validates a root on open and serves
frames as numpy dicts; ``DatasetError`` reports a missing or corrupt dataset. See
:mod:`vlarm.data.info` for the layout and :mod:`vlarm.data.storage` for the column encodings.
"""

from vlarm.data.errors import DatasetError
from vlarm.data.info import DatasetInfo, vlarm_features
from vlarm.data.reader import EpisodeDataset
from vlarm.data.writer import EpisodeWriter

__all__ = ["DatasetError", "DatasetInfo", "EpisodeDataset", "EpisodeWriter", "vlarm_features"]
