"""The static leaderboard site: `leaderboards/<name>.yaml` -> collected results -> HTML, CSV, JSON.

config = load_config("leaderboards/core.yaml")
board = collect(config, runs=None)          # None: the config's `runs`
build_site(board, "site/")
"""

from .collect import Board, collect, significance_bands
from .config import LeaderboardConfig, load_config
from .site import build_site

__all__ = ["Board", "LeaderboardConfig", "build_site", "collect", "load_config", "significance_bands"]
