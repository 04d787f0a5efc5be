"""The one exception the dataset layer raises for problems with data on disk."""

from __future__ import annotations


class DatasetError(Exception):
    """A dataset on disk is missing, corrupt or inconsistent.

    The message always names the file, says what is wrong with it and how to fix it. Errors in the
    caller's arguments (a bad shape handed to :meth:`EpisodeWriter.add_episode`, an index out of
    range) raise the usual ``ValueError`` / ``IndexError`` instead.
    """
