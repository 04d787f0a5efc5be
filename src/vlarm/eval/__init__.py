"""Rollouts, the CLIPort evaluation protocol, reports (JSON + Markdown) and episode videos."""

from vlarm.eval.rollout import EpisodeRecord, OracleAgent, evaluate, rollout, summarize, write_results
from vlarm.sim.video import VideoRecorder

__all__ = ["EpisodeRecord", "OracleAgent", "VideoRecorder", "evaluate", "rollout", "summarize", "write_results"]
